"""HAMi's annotations as the scheduler and the device plugin write them (HAMi v2.10.0).

Node: `hami.io/node-nvidia-register`, the device plugin's inventory of the node's GPUs, in one
of two formats:
- JSON (HAMi >= 2.8; pkg/device/devices.go MarshalNodeDevices, read back by
  UnMarshalNodeDevices): a list of DeviceInfo objects. Every field is `omitempty` in Go, so a
  zero value is simply absent: no "index" means GPU 0, no "numa" means node 0 and no "health"
  means *unhealthy* (false). Parsed here with the same zero defaults.
- records (HAMi < 2.8, and the reference blog; devices.go EncodeNodeDevices/DecodeNodeDevices):
  `UUID,count,mem,core,type,numa,health,index,mode:` per GPU, or the older 7-field form without
  index and mode (then index 0 and mode "hami-core", as DecodeNodeDevices assumes).

Pod: `hami.io/vgpu-devices-allocated`, written by hami-scheduler once the pod is placed
(devices.go EncodePodSingleDevice / DecodeContainerDevices): `UUID,vendor,<MiB>,<cores>:` per
device, `;` after each container, e.g. `GPU-f8e7...,NVIDIA,7500,0:;`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

JSON_FORMAT: Literal["json"] = "json"
RECORD_FORMAT: Literal["records"] = "records"
NodeFormat = Literal["json", "records"]

# devices.go OneContainerMultiDeviceSplitSymbol / OnePodMultiContainerSplitSymbol
_DEVICE_END = ":"
_CONTAINER_END = ";"
_DEFAULT_MODE = "hami-core"  # DecodeNodeDevices' mode for 7-field records


class AnnotationError(ValueError):
    """An annotation that HAMi itself could not read either; the message says what is wrong."""


@dataclass(frozen=True)
class RegisteredGpu:
    """One GPU as the device plugin registered it (devices.go DeviceInfo)."""

    uuid: str
    index: int
    count: int  # pods that may share it (devicePlugin.deviceSplitCount)
    memory_mib: int  # devmem: nvidia-smi memory.total x deviceMemoryScaling
    cores: int  # devcore: 100 per GPU
    type: str  # e.g. "NVIDIA-Tesla T4", "NVIDIA A10G"
    numa: int
    health: bool
    mode: str  # "hami-core", "mig", "mps"


@dataclass(frozen=True)
class NodeRegistration:
    format: NodeFormat
    gpus: tuple[RegisteredGpu, ...]


@dataclass(frozen=True)
class AllocatedDevice:
    """One device hami-scheduler gave a container (devices.go ContainerDevice)."""

    uuid: str
    vendor: str  # "NVIDIA"
    memory_mib: int  # the slice: what the container sees as memory.total
    cores: int


def parse_node_register(text: str) -> NodeRegistration:
    """Either format; JSON when the value is a JSON list (what 2.10's scheduler reads)."""
    stripped = text.strip()
    if stripped.startswith("["):
        return NodeRegistration(JSON_FORMAT, _parse_json(stripped))
    return NodeRegistration(RECORD_FORMAT, _parse_records(stripped))


def _parse_json(text: str) -> tuple[RegisteredGpu, ...]:
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AnnotationError(f"not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(items, list):
        raise AnnotationError("JSON is not a list of devices")
    return tuple(_json_gpu(position, item) for position, item in enumerate(items))


def _json_int(item: dict[str, Any], key: str, position: int) -> int:
    value = item.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int):
        raise AnnotationError(f"device {position}: {key} {value!r} is not an integer")
    return int(value)


def _json_gpu(position: int, item: Any) -> RegisteredGpu:
    if not isinstance(item, dict):
        raise AnnotationError(f"device {position} is not an object")
    uuid = item.get("id", "")
    if not isinstance(uuid, str) or not uuid:
        raise AnnotationError(f"device {position} has no id")
    health = item.get("health", False)
    if not isinstance(health, bool):
        raise AnnotationError(f"device {position}: health {health!r} is not a boolean")
    return RegisteredGpu(
        uuid=uuid,
        index=_json_int(item, "index", position),
        count=_json_int(item, "count", position),
        memory_mib=_json_int(item, "devmem", position),
        cores=_json_int(item, "devcore", position),
        type=str(item.get("type", "")),
        numa=_json_int(item, "numa", position),
        health=health,
        mode=str(item.get("mode", "")),
    )


def _record_int(value: str, field: str, record: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise AnnotationError(f"record {record!r}: {field} {value!r} is not an integer") from None


def _record_bool(value: str, record: str) -> bool:
    # Go's strconv.ParseBool, which DecodeNodeDevices uses.
    if value in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if value in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise AnnotationError(f"record {record!r}: health {value!r} is not a boolean")


def _parse_records(text: str) -> tuple[RegisteredGpu, ...]:
    if _DEVICE_END not in text:
        raise AnnotationError(f"neither a JSON list nor `{_DEVICE_END}`-terminated records")
    gpus = []
    for record in text.split(_DEVICE_END):
        if not record:
            continue
        fields = record.split(",")
        if len(fields) not in (7, 9):
            raise AnnotationError(f"record {record!r} has {len(fields)} fields; HAMi writes 7 or 9 "
                                  f"(UUID,count,mem,core,type,numa,health[,index,mode])")
        index = _record_int(fields[7], "index", record) if len(fields) == 9 else 0
        gpus.append(RegisteredGpu(
            uuid=fields[0],
            index=index,
            count=_record_int(fields[1], "count", record),
            memory_mib=_record_int(fields[2], "mem", record),
            cores=_record_int(fields[3], "core", record),
            type=fields[4],
            numa=_record_int(fields[5], "numa", record),
            health=_record_bool(fields[6], record),
            mode=fields[8] if len(fields) == 9 else _DEFAULT_MODE,
        ))
    return tuple(gpus)


def parse_devices_allocated(text: str) -> tuple[tuple[AllocatedDevice, ...], ...]:
    """Devices per container, in container order (a container without devices is empty).

    Every container's entry ends with `;`, so the empty piece after the last `;` is the
    terminator, not a container.
    """
    pieces = text.split(_CONTAINER_END)
    if text.endswith(_CONTAINER_END):
        pieces = pieces[:-1]
    containers = []
    for piece in pieces:
        devices = []
        for entry in piece.split(_DEVICE_END):
            if not entry:
                continue
            fields = entry.split(",")
            if len(fields) < 4:
                raise AnnotationError(f"device {entry!r} has {len(fields)} fields; HAMi writes "
                                      f"UUID,vendor,MiB,cores")
            devices.append(AllocatedDevice(fields[0], fields[1], _record_int(fields[2], "MiB", entry),
                                           _record_int(fields[3], "cores", entry)))
        containers.append(tuple(devices))
    return tuple(containers)


def allocated_devices(text: str) -> tuple[AllocatedDevice, ...]:
    """Every device of every container of the pod, in order."""
    return tuple(device for container in parse_devices_allocated(text) for device in container)
