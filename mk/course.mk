# Course builds: student/instructor editions, offline slides and HTML, and the browser test's deps.
# Included from the Makefile (`include mk/course.mk`); uses its VENV, VPY and setup.
#
#   make student       build/student/: solution cells replaced by stubs, their results cleared
#   make instructor    build/instructor/: the notebooks with everything
#   make slides        build/slides/NN_name.slides.html (reveal.js, offline) from cells' slide metadata
#   make html          build/html/index.html and one page per notebook (offline)
#   make web-assets    npm ci: reveal.js, require.js, jQuery, MathJax 2, widgets renderer into node_modules/
#   make browser-deps  Debian's chromium (apt-get, as root) and playwright (pip) for tests/browser/
#
# See docs/INSTRUCTORS.md.

VENV ?= .venv
VPY ?= $(VENV)/bin/python
PIP_QUIET := $(VPY) -m pip --disable-pip-version-check --no-input install --quiet

FSLCOURSE_CHROMIUM ?= /usr/bin/chromium
PLAYWRIGHT_PIN ?= playwright==1.65.2
BROWSER_STAMP := $(VENV)/.fslcourse-browser-$(subst ==,-,$(PLAYWRIGHT_PIN))
# npm ci runs again when package.json or package-lock.json change.
WEB_HASH := $(shell cat package.json package-lock.json 2>/dev/null | sha256sum | cut -c1-16)
WEB_STAMP := node_modules/.fslcourse-web-assets-$(WEB_HASH)
IS_ROOT := $(filter 0,$(shell id -u))

.PHONY: student instructor slides html web-assets browser-deps

student: setup
	"$(VPY)" scripts/editions.py student --out build/student

instructor: setup
	"$(VPY)" scripts/editions.py instructor --out build/instructor

slides: setup web-assets
	"$(VPY)" scripts/build_slides.py --out build/slides

html: setup web-assets
	"$(VPY)" scripts/build_html.py --out build/html

web-assets: $(WEB_STAMP)

$(WEB_STAMP): package.json package-lock.json
	@if ! command -v npm >/dev/null; then \
		if [ -n "$(IS_ROOT)" ] && command -v apt-get >/dev/null; then \
			echo "==> web-assets: npm is missing; apt-get install -y npm"; \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q npm >/dev/null \
			|| { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q npm >/dev/null; } \
			|| { echo "ERROR: could not install npm. fix: install Node.js and npm, then 'make web-assets'"; exit 1; }; \
		else \
			echo "ERROR: npm not found. fix: install Node.js and npm (Debian: sudo apt-get install npm), then 'make web-assets'"; \
			exit 1; \
		fi; \
	fi
	@echo "==> web-assets: npm ci (pinned by package-lock.json; node_modules/ is not committed)"
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	@rm -f node_modules/.fslcourse-web-assets-*
	@touch "$@"

# Never `playwright install`: the test drives Debian's chromium (FSLCOURSE_CHROMIUM). Without root or
# apt-get this warns instead of failing, so `make test` still runs elsewhere; the browser
# test then fails under CI=true and is skipped otherwise, naming this target as the fix.
browser-deps: setup
	@if [ -x "$(FSLCOURSE_CHROMIUM)" ]; then \
		echo "browser-deps: $(FSLCOURSE_CHROMIUM) is installed"; \
	elif [ -n "$(IS_ROOT)" ] && command -v apt-get >/dev/null; then \
		echo "==> browser-deps: apt-get install -y chromium"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 \
		|| { echo "    (no candidate yet: apt-get update first)"; apt-get update -q >/dev/null \
		     && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; } \
		|| echo "WARNING: apt-get could not install chromium; the browser test will fail in CI. fix: apt-get install chromium"; \
	else \
		echo "WARNING: $(FSLCOURSE_CHROMIUM) is missing and this is not root with apt-get; the browser test will fail in CI and be skipped here."; \
		echo "  fix: sudo apt-get install chromium (or FSLCOURSE_CHROMIUM=/path/to/chromium), then 'make browser-deps'"; \
	fi
	@if [ -f "$(BROWSER_STAMP)" ] && "$(VPY)" -c 'import playwright' 2>/dev/null; then \
		echo "browser-deps: $(PLAYWRIGHT_PIN) is installed"; \
	else \
		echo "==> browser-deps: pip install $(PLAYWRIGHT_PIN) (its driver only; browsers come from Debian)"; \
		$(PIP_QUIET) "$(PLAYWRIGHT_PIN)" && rm -f "$(VENV)"/.fslcourse-browser-* && touch "$(BROWSER_STAMP)"; \
	fi

# make test installs what the slides/HTML and browser tests need first.
test: web-assets browser-deps
