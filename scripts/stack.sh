#!/usr/bin/env bash
# `make up|preview|outputs|destroy STACK=<name>`: the Pulumi side of the Makefile, with the
# checks that must come before Pulumi is ever called:
#   1. the stack file exists (a typo must never deploy the project defaults, the $10/hour demo);
#   0. the stack name is one Pulumi stack name (letters, digits, '-', '_', '.');
#   2. for up: the plan (placement, model fit, $/hour), then the account preflight (credentials,
#      instance types and GPUs, zones, vCPU quotas, EKS version; PREFLIGHT=0 skips it), then a
#      confirmation unless YES or CI is an explicit yes (1, yes, true, y; any case);
#   3. for destroy: the same confirmation, then the leak audit (exit 1 when something the
#      cluster created outside Pulumi's state is left);
#   4. with a self-managed backend (the local file backend without `pulumi login`, or S3 etc.),
#      up and preview refuse an empty secrets passphrase unless the stack uses a KMS secrets
#      provider: the stack file's `secure:` values would be readable by anyone with the repo.
# up and preview run the policy pack in policies/ (`--policy-pack policies`).
# Exit codes: the failing step's own (plan: 1 cannot place, 2 unreadable stack); 2 bad stack name,
# missing stack file or empty passphrase; 3 declined.
set -euo pipefail

action=${1:?usage: stack.sh up|preview|outputs|destroy STACK}
stack=${2-}
if [[ ! "$stack" =~ ^[A-Za-z0-9._-]+$ ]]; then
  echo "Stack name '$stack' is not one Pulumi stack name (letters, digits, '-', '_', '.'); nothing was run. E.g. STACK=demo." >&2
  exit 2
fi
cd "$(dirname "$0")/.."
hami_eks=${HAMI_EKS:-.venv/bin/hami-eks}
export STACK="$stack"

if [[ ! -f "Pulumi.$stack.yaml" ]]; then
  echo "No stack file Pulumi.$stack.yaml; nothing was sent to Pulumi." >&2
  echo "Stacks here: $(ls Pulumi.*.yaml 2>/dev/null | sed -E 's/^Pulumi\.(.*)\.yaml$/\1/' | grep -vx yaml | paste -sd, - | sed 's/,/, /g')" >&2
  echo "Pick one with STACK=<name>, or create Pulumi.$stack.yaml (see README: add your own stack)." >&2
  exit 2
fi

is_yes() {  # only an explicit yes: YES=no, YES=false, CI=false or YES=0 never answer for the user
  case "${1,,}" in 1|y|yes|true) return 0 ;; *) return 1 ;; esac
}

confirm() {  # $1: question; YES or CI set to an explicit yes answers without asking
  if is_yes "${YES:-}" || is_yes "${CI:-}"; then return 0; fi
  if [[ ! -t 0 ]]; then
    echo "$1 Not confirmed: no terminal to ask on; set YES=1 to proceed." >&2
    return 1
  fi
  local answer
  read -r -p "$1 [y/N] " answer
  [[ "$answer" == [yY] || "$answer" == [yY][eE][sS] ]]
}

if [[ "$action" == up ]]; then
  # The same plan the program's preflight runs; a stack that cannot be placed stops here.
  "$hami_eks" plan --stack "$stack" --summary
  if [[ "${PREFLIGHT:-1}" != 0 ]]; then
    "$hami_eks" preflight --stack "$stack"
  fi
fi

command -v pulumi >/dev/null || { echo "Pulumi CLI not found: https://www.pulumi.com/docs/install/" >&2; exit 2; }
if whoami=$(pulumi whoami --verbose 2>/dev/null); then
  backend_url=$(sed -n 's/^Backend URL: *//p' <<<"$whoami")
else
  # Without `pulumi login`, state goes to a local file backend inside the project.
  mkdir -p .pulumi-state
  export PULUMI_BACKEND_URL="file://$PWD/.pulumi-state"
  backend_url=$PULUMI_BACKEND_URL
fi
# Every self-managed backend (file, S3, GCS, Azure Blob) protects the stack's secrets with the
# passphrase unless the stack file names a KMS secrets provider; Pulumi Cloud manages its own.
case "$backend_url" in
  file://*|s3://*|gs://*|azblob://*) self_managed=1 ;;
  *) self_managed=0 ;;
esac
if [[ "$self_managed" == 1 ]] && [[ "$action" == up || "$action" == preview ]] \
   && [[ -z "${PULUMI_CONFIG_PASSPHRASE:-}" ]] && [[ -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]] \
   && ! grep -Eq '^secretsprovider: *[a-z]+kms://' "Pulumi.$stack.yaml"; then
  echo "Refusing the state backend ${backend_url%%\?*} with an empty secrets passphrase: the stack's secrets (hfToken) would be readable by anyone with the repository." >&2
  echo "Set one (export PULUMI_CONFIG_PASSPHRASE=..., or PULUMI_CONFIG_PASSPHRASE_FILE=<file>), use a KMS secrets provider (pulumi stack change-secrets-provider awskms://alias/<key>?region=<region> --stack $stack), or \`pulumi login\` to Pulumi Cloud." >&2
  exit 2
fi

case "$action" in
  up)
    confirm "Deploy stack $stack? It runs until \`make destroy STACK=$stack\`." || exit 3
    pulumi stack select "$stack" 2>/dev/null || pulumi stack init "$stack"
    pulumi up --yes --stack "$stack" --policy-pack policies ;;
  preview)
    pulumi stack select "$stack" 2>/dev/null || pulumi stack init "$stack"
    pulumi preview --stack "$stack" --policy-pack policies ;;
  outputs)
    pulumi stack output --stack "$stack" ;;
  destroy)
    confirm "Destroy every resource of stack $stack?" || exit 3
    pulumi destroy --yes --stack "$stack"
    # What Kubernetes and EKS created outside Pulumi's state survives the destroy: list it.
    "$hami_eks" leaks --stack "$stack" ;;
  *)
    echo "unknown action $action" >&2; exit 2 ;;
esac
