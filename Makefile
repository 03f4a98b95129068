# erpbridge — the two set-up commands of the README, and their parts.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo demo-erp demo-warranty test lint install system-packages bench clean

# Create the virtualenv and install erpbridge with its test tools (again when pyproject changes).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,postgres,mysql,mssql,oracle,soap,sftp,pdf,amqp,nats]'
	touch $(STAMP)

# Debian packages beyond Python (xmlsec1 for SAML signatures); installed when missing.
system-packages:
	bash scripts/system-packages.sh

install: system-packages $(STAMP)

demo: $(STAMP)
	bash examples/demo/run.sh $(abspath $(BIN))/erpbridge

# The warranty claim path (examples/warranty): SAP CAP, OpenSSH and the archive (needs root for sshd).
demo-warranty: $(STAMP)
	bash examples/warranty/run.sh $(abspath $(BIN))/erpbridge

# Tryton (a throwaway server from scripts/tryton.sh), sample data, the MDS-like catalogue.
demo-erp: $(STAMP)
	bash examples/tryton/run.sh $(abspath $(BIN))/erpbridge

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/mypy src

test: system-packages lint
	bash scripts/test.sh

bench: $(STAMP)
	$(BIN)/python bench/migrate.py

clean:
	rm -rf $(VENV) examples/demo/data examples/warranty/data bench/.data .mypy_cache .ruff_cache .pytest_cache
