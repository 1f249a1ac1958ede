# The namespace lab (labs/lab) and the demo fabric; included by the top-level Makefile.
#   make demo             install what is missing, build the demo fabric, print its status
#   make down             take it away again (also after a crashed `up`)
#   make controller-venv  os-ken in its own venv (its dependencies must not meet Debian's packages)
#   make lab-configs      render the switches' intents of every topology (configs*/) with tor-agent fabric render
# LAB_FILE=labs/containerlab/fabric-3x4.clab.yml picks another topology.

LAB_FILE        ?= labs/containerlab/fabric.clab.yml
LAB             := labs/lab
CONTROLLER_VENV := .venv-controller
OSKEN_REQ       := os-ken>=4.2,<5

# Each topology, its settings (TOPOLOGY.settings.yml) and the directory its intents are rendered into.
LAB_CONFIGS     := fabric:configs fabric-3x4:configs-3x4 fabric-leaf4:configs-leaf4

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
	@echo "Look around (any node of $(LAB_FILE)):"
	@echo "  $(LAB) exec $(LAB_FILE) leaf1    # a shell inside leaf1"
	@echo "  $(LAB) exec $(LAB_FILE) leaf1 -- vtysh -c 'show ip ospf neighbor'"
	@echo "  $(LAB) exec $(LAB_FILE) leaf1 -- ip route"
	@echo "  $(LAB) exec $(LAB_FILE) leaf1 -- ovs-vsctl show"
	@echo "  $(LAB) status $(LAB_FILE) [--json]"
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
	done
