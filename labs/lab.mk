# The namespace lab (labs/lab) and the demo fabric; included by the top-level Makefile.
#   make demo             install what is missing, build the demo fabric, print its status
#   make down             take it away again (also after a crashed `up`)
#   make controller-venv  os-ken in its own venv (its dependencies must not meet Debian's packages)
#   make lab-configs      render the switches' intents of every topology (configs*/) with tor-agent fabric render,
#                         and the controller's starting networks (TOPOLOGY.networks.json) from the hosts' labels
# LAB_FILE=labs/containerlab/fabric-3x4.clab.yml picks another topology.

LAB_FILE        ?= labs/containerlab/fabric.clab.yml
LAB             := labs/lab
CONTROLLER_VENV := .venv-controller
OSKEN_REQ       := os-ken>=4.2,<5

# Each topology, its settings (TOPOLOGY.settings.yml) and the directory its intents are rendered into.
LAB_CONFIGS     := fabric:configs fabric-3x4:configs-3x4 fabric-leaf4:configs-leaf4
# The demo controller's network API (its management address in LAB_FILE, port 8080).
CONTROLLER_API   = $(shell sed -n '/^    controller:/,/mgmt-ipv4/s/^ *mgmt-ipv4: *//p' $(LAB_FILE) | head -n1):8080

.PHONY: controller-venv lab-status lab-configs

controller-venv: $(CONTROLLER_VENV)/.installed
$(CONTROLLER_VENV)/.installed: labs/lab.mk
	$(PY) -m venv $(CONTROLLER_VENV)
	$(CONTROLLER_VENV)/bin/pip install -q '$(OSKEN_REQ)'
	@touch $@

# The lab tests (tests/e2e) run a controller node: `make test` needs the controller's venv too.
test: controller-venv

demo: deps controller-venv
	@PATH=$(CURDIR)/$(BIN):$$PATH $(LAB) up $(LAB_FILE)
	@echo
	@$(LAB) status $(LAB_FILE) || true
	@echo
	@$(PY) -m labs.labkit.tenants show $(LAB_FILE) || true
	@echo
	@echo "Look around (any node of $(LAB_FILE)):"
	@echo "  $(LAB) exec $(LAB_FILE) leaf1    # a shell inside leaf1"
	@echo "  $(LAB) exec $(LAB_FILE) leaf1 -- vtysh -c 'show ip ospf neighbor'"
	@echo "  $(LAB) exec $(LAB_FILE) leaf1 -- ip route"
	@echo "  $(LAB) exec $(LAB_FILE) leaf1 -- ovs-vsctl show"
	@echo "  $(LAB) status $(LAB_FILE) [--json]"
	@echo
	@echo "Two tenant networks share the subnet 198.51.100.0/24 (same addresses, same MACs), isolated:"
	@echo "  $(LAB) exec $(LAB_FILE) host1 -- ping -c2 198.51.100.12    # blue: host1 (leaf1) -> host2 (leaf2)"
	@echo "  $(LAB) exec $(LAB_FILE) red1 -- ping -c2 198.51.100.12     # red:  red1 (leaf1) -> red2 (leaf2)"
	@echo "Networks on demand: the controller's API at http://$(CONTROLLER_API)/networks (on the management network):"
	@echo "  $(LAB) exec $(LAB_FILE) controller -- curl -s $(CONTROLLER_API)/networks"
	@echo "  $(LAB) exec $(LAB_FILE) controller -- curl -s -X POST -d '{\"name\": \"green\", \"vni\": 1003}' $(CONTROLLER_API)/networks"
	@echo "  $(LAB) exec $(LAB_FILE) controller -- curl -s -X DELETE $(CONTROLLER_API)/networks/blue/ports/leaf3/eth4"
	@echo "  $(LAB) exec $(LAB_FILE) controller -- curl -s -X PUT -d '{\"switch\": \"leaf3\", \"port\": \"eth4\"}' $(CONTROLLER_API)/networks/green/ports"
	@echo "Take it down: make down"

down:
	@$(LAB) down $(LAB_FILE)

lab-status:
	@$(LAB) status $(LAB_FILE)

lab-configs: venv
	@for pair in $(LAB_CONFIGS); do \
		topo=labs/containerlab/$${pair%%:*}; \
		$(BIN)/tor-agent fabric render $$topo.clab.yml --settings $$topo.settings.yml \
			--output-dir labs/containerlab/$${pair#*:} || exit 1; \
		$(BIN)/python -m labs.labkit.tenants seed $$topo.clab.yml $$topo.networks.json || exit 1; \
	done
