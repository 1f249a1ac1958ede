"""The lab kit: what tests (tests/e2e) and benchmarks (bench/) use to drive a running namespace lab.

- `lab`: where the lab's files are, the machine-wide lock per lab, a lab brought up for a while, and `Lab`,
  a running lab as tests see it;
- `nodes`: commands and processes inside nodes, the tor-agent daemons, their engine lock;
- `fabric`: what the topology and the intents say (loopbacks, tenant addresses, leaf-spine links) and
  whether every switch's `tor-agent verify` passes;
- `probe`: the UDP traffic probe between two nodes and the loss windows it sees (`udp_probe` is its half
  inside the nodes);
- `faults`: failures to inject (a silent link failure, carrier loss, BFD disabled).
"""
