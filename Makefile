# Deploy-related targets for sparkbridge (see docs/operations.md).
# Tools (cfn-lint, aws-sam-cli, cargo-lambda) are expected in one venv; point VENV at it,
# e.g. `make validate VENV=/work/.venv`.
VENV ?= .venv
ifneq ($(wildcard $(VENV)/bin),)
export PATH := $(abspath $(VENV))/bin:$(PATH)
endif
export SAM_CLI_TELEMETRY := 0

.PHONY: test dev moto validate deploy deploy-guided

## test: every test; starts a moto server (SQS + DynamoDB) for the integration tests
test:
	scripts/test.sh

## dev: run the whole bridge locally on the in-memory default (http://127.0.0.1:3000)
dev:
	cargo run -p sparkbridge-cli -- dev

## moto: start a moto server on 127.0.0.1:5055 for manual runs (`scripts/moto.sh stop`)
moto:
	scripts/moto.sh start

## validate: lint the SAM template (offline, no AWS credentials needed)
validate:
	cfn-lint template.yaml && sam validate --lint

## deploy: build and deploy with the settings saved in samconfig.toml
deploy: validate
	sam build && sam deploy

## deploy-guided: first deploy (or changing saved settings); prompts for every parameter
deploy-guided: validate
	sam build && sam deploy --guided
