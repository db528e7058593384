"""A stalled network ends a command in seconds with one clear line, never minutes of silence.

A server on 127.0.0.1 accepts connections and never answers (a black-holing proxy or firewall);
AWS_ENDPOINT_URL points every boto3 call at it, and a kubeconfig points verify at it. The AWS
timeouts are shortened for the test through the same constants the product uses.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from botocore.config import Config
from helpers import REPO

from hamieks import cli
from hamieks.aws import session
from hamieks.aws.session import Aws, AwsUnreachable, translated_errors


@contextlib.contextmanager
def silent_server() -> Iterator[tuple[int, list[socket.socket]]]:
    """Accepts every connection, reads nothing back, answers nothing; yields (port, accepted)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.2)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                accepted.append(listener.accept()[0])

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], accepted
    finally:
        stop.set()
        thread.join(timeout=2)
        for conn in accepted:
            conn.close()
        listener.close()


@pytest.fixture
def stalled_aws(monkeypatch) -> Iterator[list[socket.socket]]:
    with silent_server() as (port, accepted):
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        monkeypatch.setattr(session, "RETRY_CONFIG", Config(retries={"mode": "standard", "total_max_attempts": 2},
                                                            connect_timeout=1, read_timeout=1))
        yield accepted


def test_after_one_call_that_got_no_answer_the_session_asks_nothing_more(stalled_aws):
    aws = Aws("us-west-2")
    with pytest.raises(AwsUnreachable, match="cannot reach AWS"), translated_errors("identity"):
        aws.sts().get_caller_identity()
    connections = len(stalled_aws)
    assert connections >= 2  # the try and its one retry reached the server
    ec2 = aws.ec2()  # building a client loads its service model: not part of the call
    started = time.monotonic()
    with pytest.raises(AwsUnreachable, match="was not tried"):
        ec2.describe_regions()
    # No new connection, and no timeout waited (one would be a whole second here).
    assert len(stalled_aws) == connections and time.monotonic() - started < 0.9


@pytest.mark.parametrize("command", [["preflight", "--stack", "demo"], ["leaks", "--stack", "demo"]])
def test_account_commands_end_with_one_line(stalled_aws, command, capsys):
    started = time.monotonic()
    code = cli.main([*command, "--project-dir", str(REPO)])
    elapsed = time.monotonic() - started
    err = capsys.readouterr().err
    assert code == 2, err
    assert "cannot reach AWS" in err and "HTTPS_PROXY" in err
    assert len([line for line in err.splitlines() if line.strip()]) == 1, err
    assert elapsed < 20, elapsed  # two 1-second tries per call, then nothing more is asked


def test_plan_with_auto_prices_falls_back_to_the_recorded_table(stalled_aws, capsys):
    code = cli.main(["plan", "--stack", "lean", "--prices", "auto", "--summary", "--project-dir", str(REPO)])
    out = capsys.readouterr().out
    assert code == 0
    assert "$2.0494/hour" in out and "cannot reach AWS" in out


def test_the_shipped_timeouts_are_bounded():
    # What a real stalled network costs one call: at most about a minute, never botocore's defaults.
    worst = session.MAX_ATTEMPTS * (session.CONNECT_TIMEOUT_S + session.READ_TIMEOUT_S)
    assert worst <= 60
    assert session.RETRY_CONFIG.read_timeout == session.READ_TIMEOUT_S
    # botocore's `max_attempts` counts retries only; `total_max_attempts` counts the first try too.
    assert session.RETRY_CONFIG.retries == {"mode": "standard", "total_max_attempts": session.MAX_ATTEMPTS}


def test_verify_against_a_stalled_api_server_ends_in_seconds(tmp_path, monkeypatch, capsys):
    from hamieks.verify import cluster as verify_cluster

    monkeypatch.setattr(verify_cluster, "REQUEST_TIMEOUT", (1.0, 1.0))
    with silent_server() as (port, _):
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(f"""\
apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "http://127.0.0.1:{port}"}}}}]
users: [{{name: u, user: {{token: t}}}}]
contexts: [{{name: x, context: {{cluster: c, user: u}}}}]
current-context: x
""")
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))  # no --kubeconfig: KUBECONFIG is read
        started = time.monotonic()
        code = cli.main(["verify", "--stack", "demo", "--project-dir", str(REPO)])
        elapsed = time.monotonic() - started
    err = capsys.readouterr().err
    assert code == 2 and "cannot reach the cluster's API server" in err, err
    assert str(kubeconfig) in err
    assert elapsed < 10, elapsed


def test_verify_without_a_kubeconfig_says_how_to_get_one(monkeypatch, capsys):
    monkeypatch.delenv("KUBECONFIG", raising=False)
    assert cli.main(["verify", "--stack", "demo", "--project-dir", str(REPO)]) == 2
    assert "pass --kubeconfig FILE or set KUBECONFIG" in capsys.readouterr().err


def test_a_terminal_sees_what_is_being_waited_for(stalled_aws):
    """On a terminal a spinner names the wait; piped (CI) stderr stays one line (tests above)."""
    import os
    import pty
    import subprocess
    import sys

    leader, follower = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120"}
    env.pop("NO_COLOR", None)
    # The product's timeouts would make this wait a minute; the preflight's spinner shows at once.
    process = subprocess.Popen([sys.executable, "-m", "hamieks", "preflight", "--stack", "demo"], cwd=REPO, env=env,
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=follower)
    os.close(follower)
    seen = b""
    deadline = time.monotonic() + 20
    try:
        while b"asking AWS" not in seen and time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                seen += os.read(leader, 4096)
    finally:
        process.kill()
        process.wait()
        os.close(leader)
    assert b"preflight: asking AWS in us-west-2" in seen, seen[-500:]
