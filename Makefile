# Convenience targets; each is a thin wrapper over an npm script or a hack/ script.
.PHONY: all deps testbin test unit lint typecheck plane ci kind-e2e
all: test

deps:            ## Debian packages the test plane runs (needs root)
	hack/install-system-deps.sh
testbin:         ## build kube-apiserver, kubectl, etcd, MinIO into ~/.cache/warden/bin
	hack/testbin.sh
node_modules: package-lock.json
	npm ci
test: node_modules   ## static checks + all tests (the README's test command)
	npm test
unit: node_modules
	npm run test:unit
lint: node_modules
	npm run lint
typecheck: node_modules
	npm run typecheck
plane: node_modules  ## run the test plane until Ctrl-C
	npm run plane
kind-e2e: node_modules  ## build the image, run Warden in a kind cluster, run test/e2e/kind (skips without Docker/kind; docs/kind-e2e.md)
	hack/kind-e2e.sh
ci:              ## what CI runs
	.ci/run
