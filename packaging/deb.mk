# The Debian package; included by the top-level Makefile.
#   make deb        build/deb/tor-agent_<version>_all.deb from the working tree (tracked and untracked files
#                   that git does not ignore). The unit tests run inside the build (DEB_BUILD_OPTIONS=nocheck
#                   skips them); then lintian must report no error and no warning.
#   make deb-deps   install what the build needs (Build-Depends of packaging/deb/debian/control, lintian)
#   make deb-clean  remove build/deb
# The source package is assembled in build/deb/tor-agent (the working tree plus packaging/deb/debian as
# debian/) and removed after a successful build; the source tree itself is never written to. The build
# sees only Debian's own programs (DEB_PATH): a pyenv, a venv or /usr/local on PATH must not leak into it.

DEB_DIR     := build/deb
DEB_SRC     := $(DEB_DIR)/tor-agent
DEB_CONTROL := packaging/deb/debian/control
DEB_LOG     := $(DEB_DIR)/build.log
DEB_PATH    := /usr/sbin:/usr/bin:/sbin:/bin
APT_GET     := DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300

.PHONY: deb deb-deps deb-clean

deb: deb-deps
	rm -rf $(DEB_DIR)
	mkdir -p $(DEB_SRC)
	git ls-files -z --cached --others --exclude-standard \
		| tar --null --files-from=- --ignore-failed-read -cf - | tar -xf - -C $(DEB_SRC)
	cp -r packaging/deb/debian $(DEB_SRC)/debian
	@echo "dpkg-buildpackage: log in $(DEB_LOG)"
	@cd $(DEB_SRC) && PATH=$(DEB_PATH) dpkg-buildpackage --build=binary --no-sign >$(CURDIR)/$(DEB_LOG) 2>&1 \
		|| { tail -n 60 $(CURDIR)/$(DEB_LOG); echo "make deb: dpkg-buildpackage failed, see $(DEB_LOG)"; exit 1; }
	PATH=$(DEB_PATH) lintian --fail-on error,warning $(DEB_DIR)/tor-agent_*.changes
	rm -rf $(DEB_SRC)
	@ls -1 $(DEB_DIR)/*.deb

# Idempotent: asks apt only when something is missing.
deb-deps:
	@dpkg-checkbuilddeps $(DEB_CONTROL) 2>/dev/null || { \
		echo "installing the build dependencies of $(DEB_CONTROL)"; \
		$(APT_GET) update -qq && $(APT_GET) build-dep -y -qq ./packaging/deb >/dev/null; }
	@dpkg-query -W -f='$${Status}\n' lintian 2>/dev/null | grep -q '^install ok installed' || { \
		echo "installing lintian"; $(APT_GET) install -y -qq lintian >/dev/null; }

deb-clean:
	rm -rf $(DEB_DIR)

# The lab on the installed package, as on a switch: build the .deb, install it with apt (so Debian's
# python3-* libraries run it), run the lab tests with every switch running /usr/bin/tor-agent, then purge
# the package again, whatever the tests said.
.PHONY: test-installed
test-installed: deps deb controller-venv
	$(APT_GET) install -y -qq ./$$(ls $(DEB_DIR)/tor-agent_*_all.deb) >/dev/null
	TOR_AGENT=/usr/bin/tor-agent $(RUN) pytest -q -m lab tests/e2e; rc=$$?; \
		$(APT_GET) purge -y -qq tor-agent >/dev/null; exit $$rc
