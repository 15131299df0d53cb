# Deploy-related targets for sparkbridge (see docs/operations.md).
# Tools (cfn-lint, aws-sam-cli, cargo-lambda) live in one venv, $(VENV) (default .venv),
# installed by `make tools`; point VENV elsewhere with e.g. `make validate VENV=/path/to/venv`.
# ARCH (arm64 or x86_64) is the functions' CPU architecture: `make build ARCH=x86_64` when the
# aarch64 Rust target can't be installed, and then `make deploy ARCH=x86_64` too.
VENV ?= .venv
ARCH ?= arm64
export PATH := $(abspath $(VENV))/bin:$(PATH)
export SAM_CLI_TELEMETRY := 0
export VENV ARCH

# sam deploy gets Architecture only when it isn't the template's default, so that the saved
# parameter_overrides in samconfig.toml stay in effect for arm64.
DEPLOY_ARCH := $(if $(filter-out arm64,$(ARCH)),--parameter-overrides Architecture=$(ARCH))
# Before sam deploy: refuse binaries built for another CPU than the stack's functions (the
# override above, else samconfig.toml's saved Architecture, else the deployed stack's).
CHECK_ARCH := ARCH_OVERRIDE=$(filter-out arm64,$(ARCH)) scripts/check-deploy-arch.sh

.PHONY: test dev moto tools validate build deploy deploy-guided bench

## test: every test; starts a moto server (SQS + DynamoDB) for the integration tests
test:
	scripts/test.sh

## dev: run the whole bridge locally on the in-memory default (http://127.0.0.1:3000)
dev:
	cargo run -p sparkbridge-cli -- dev

## moto: start a moto server on 127.0.0.1:5055 for manual runs (`scripts/moto.sh stop`)
moto:
	scripts/moto.sh start

## tools: install cfn-lint, aws-sam-cli and cargo-lambda into $(VENV) (requirements-deploy.txt)
tools:
	scripts/setup.sh deploy

## validate: lint the SAM template with cfn-lint's rules and the custom ones of
## scripts/cfn-rules (offline, no AWS credentials needed); `--` ends --append-rules' directories
validate: tools
	cfn-lint --append-rules scripts/cfn-rules -- template.yaml && sam validate --lint

## build: sam build (cargo-lambda release builds of every function into .aws-sam/)
build: tools
	scripts/sam-build.sh

## deploy: build and deploy with the settings saved in samconfig.toml; guided the first time
## (while samconfig.toml holds no region, that is before `sam deploy --guided` saved one);
## refuses binaries of another architecture than the stack's (scripts/check-deploy-arch.sh)
deploy: validate build
	@$(CHECK_ARCH)
	@if grep -Eq '^[[:space:]]*region[[:space:]]*=' samconfig.toml; then \
		sam deploy $(DEPLOY_ARCH); \
	else \
		echo "first deploy: no region saved in samconfig.toml yet, so sam deploy --guided"; \
		sam deploy --guided $(DEPLOY_ARCH); \
	fi

## deploy-guided: first deploy (or changing saved settings); prompts for every parameter
deploy-guided: validate build
	sam deploy --guided $(DEPLOY_ARCH)

## bench: every figure of BENCHMARKS.md, each next to a baseline measured in the same run;
## results and report in target/bench/ (`make bench FIGURES="1 4"` for some of them)
FIGURES ?= 1 2 3 4 5 6 7
bench:
	FIGURES="$(FIGURES)" bench/run.sh
