"""How HAMi's own workloads are found in a cluster (chart hami 2.10.0, release "hami").

The chart labels its scheduler Deployment and device-plugin DaemonSet (and their pods) with
`app.kubernetes.io/component: hami-scheduler` / `hami-device-plugin`
(templates/scheduler/deployment.yaml, templates/device-plugin/daemonsetnvidia.yaml); their
names are `<fullname>-scheduler` / `<fullname>-device-plugin`, i.e. hami-scheduler and
hami-device-plugin for the release hami-eks installs (components/hami.py) in kube-system.
Selecting by the component label finds them whatever the release name or namespace.
"""

from __future__ import annotations

COMPONENT_LABEL = "app.kubernetes.io/component"
SCHEDULER_COMPONENT = "hami-scheduler"
DEVICE_PLUGIN_COMPONENT = "hami-device-plugin"
# Names used in messages when the objects are missing altogether.
RELEASE_NAMESPACE = "kube-system"
SCHEDULER_DEPLOYMENT = "hami-scheduler"
DEVICE_PLUGIN_DAEMONSET = "hami-device-plugin"
