"""Where every replica lands: hami-scheduler 2.10.0 and kube-scheduler simulated.

- `placement_inputs`: the pods and nodes the schedulers are given, from the settings.
- `allocatable`: what a node lets pods request (nodeadm's reservations, ENI max pods).
- `hami_scheduler`: HAMi's fit, scores and choice, rule by rule with the Go source cited.
- `arrival`: the orders in which a rollout can hand replicas to the scheduler (a sample).
- `order_proof`: every arrival order and tie-break, searched exhaustively (the proof).
- `placement`: the plan (every tried order, cost); `placement_report`: the plan's words.

May import: top level, config, kube.
"""
