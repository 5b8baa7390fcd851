#!/bin/bash
# nfq-apeeper EC2 user data: paste into "Advanced details > User data" when launching an
# instance (runs once, as root, at first boot), after filling in the settings below.
# Amazon Linux 2023 (dnf) and Debian/Ubuntu (apt). Installs the nfq-apeeper package (from
# PACKAGE_URL, or built here from SOURCE_URL), writes /etc/default/nfq-apeeper (mode 0600),
# enables and starts the service, and checks it is running. Log: /var/log/nfq-apeeper-install.log.
# The CloudFormation template (nfq-apeeper.yaml) sets the settings and CFN_* and appends the
# part of this file below the settings block; with CFN_STACK set it reports success or
# failure with cfn-signal.

# --- settings -----------------------------------------------------------------------------
FACTORY_URL=''   # "Copy Factory URL" in the Canary console (a secret: kept in a 0600 file)
BLACKLIST=''     # alert only on these comma-separated path prefixes, e.g. /latest/meta-data/iam
WHITELIST=''     # or: alert on everything except these (not both)
PACKAGE_URL=''   # a built .deb or .rpm (scripts/package), for this distribution release
SOURCE_URL=''    # else: a source tarball of nfq-apeeper to build here (used when no PACKAGE_URL)
EXTRA_ARGS=''    # more daemon options, e.g. --instance-name web-1
CFN_STACK='' CFN_RESOURCE='' CFN_REGION=''
# --- end of settings ----------------------------------------------------------------------
set -uo pipefail
umask 022
LOG=/var/log/nfq-apeeper-install.log
exec > >(tee -a "$LOG") 2>&1
echo "nfq-apeeper user data: start $(date -u +%FT%TZ)"

signal() { # $1 = 0 success / 1 failure, $2 = reason
  [ -n "$CFN_STACK" ] || return 0
  local cfn; cfn=$(command -v cfn-signal || echo /opt/aws/bin/cfn-signal)
  "$cfn" -e "$1" --reason "$2" --stack "$CFN_STACK" --resource "$CFN_RESOURCE" --region "$CFN_REGION" ||
    echo "nfq-apeeper user data: cfn-signal failed"
}
fail() {
  echo "nfq-apeeper user data: FAILED: $*"
  signal 1 "nfq-apeeper: $*"
  exit 1
}

case "$FACTORY_URL" in
  https://* | http://*) ;;
  *) fail "FACTORY_URL must be the factory URL from the Canary console (https://...)" ;;
esac
for v in "$FACTORY_URL" "$BLACKLIST" "$WHITELIST" "$EXTRA_ARGS"; do
  case "$v" in *[$'\n\r"\\']*) fail "settings must not contain newlines, quotes or backslashes" ;; esac
done
[ -z "$BLACKLIST" ] || [ -z "$WHITELIST" ] || fail "set BLACKLIST or WHITELIST, not both"
[ -n "$PACKAGE_URL$SOURCE_URL" ] || fail "set PACKAGE_URL or SOURCE_URL"

if command -v dnf >/dev/null 2>&1; then
  pm=dnf kind=rpm
  pm_install() { dnf install -y -q "$@"; }
  build_deps=(gcc-c++ make cmake pkgconf-pkg-config libnetfilter_queue-devel libmnl-devel libcurl-devel
    fmt-devel json-devel systemd-devel rpm-build tar gzip iptables-nft)
  [ -z "$CFN_STACK" ] || command -v cfn-signal >/dev/null 2>&1 || [ -x /opt/aws/bin/cfn-signal ] ||
    pm_install aws-cfn-bootstrap || echo "nfq-apeeper user data: aws-cfn-bootstrap not installable"
elif command -v apt-get >/dev/null 2>&1; then
  pm=apt kind=deb
  export DEBIAN_FRONTEND=noninteractive
  pm_install() { apt-get install -y -q -o Dpkg::Options::=--force-confold "$@"; }
  apt-get update -q || fail "apt-get update failed"
  build_deps=(build-essential cmake pkg-config libnetfilter-queue-dev libmnl-dev libcurl4-openssl-dev
    libfmt-dev nlohmann-json3-dev libsystemd-dev dpkg-dev tar gzip iptables)
  if [ -n "$CFN_STACK" ] && ! command -v cfn-signal >/dev/null 2>&1; then
    pm_install python3-pip && pip3 install --break-system-packages \
      https://s3.amazonaws.com/cloudformation-examples/aws-cfn-bootstrap-py3-latest.tar.gz ||
      echo "nfq-apeeper user data: cannot install cfn-signal"
  fi
else
  fail "neither dnf nor apt-get found; install nfq-apeeper by hand (docs/deploy.md)"
fi
echo "nfq-apeeper user data: package manager $pm"

work=$(mktemp -d /tmp/nfq-apeeper-install.XXXXXX) || fail "mktemp failed"
trap 'rm -rf "$work"' EXIT  # also when a step fails
if [ -n "$PACKAGE_URL" ]; then
  package="$work/nfq-apeeper.$kind"
  curl -fsSL --retry 5 -o "$package" "$PACKAGE_URL" || fail "cannot download PACKAGE_URL"
else
  pm_install "${build_deps[@]}" || fail "cannot install build dependencies (${build_deps[*]}); use PACKAGE_URL"
  curl -fsSL --retry 5 -o "$work/src.tar.gz" "$SOURCE_URL" || fail "cannot download SOURCE_URL"
  mkdir "$work/src" && tar -xzf "$work/src.tar.gz" -C "$work/src" --strip-components=1 || fail "cannot unpack SOURCE_URL"
  (cd "$work/src" && JOBS=$(nproc) ./scripts/package "$kind") || fail "build failed (scripts/package $kind)"
  package=$(ls "$work"/src/build/packages/nfq-apeeper*."$kind" 2>/dev/null | head -n1)
  [ -n "$package" ] || fail "the build produced no .$kind"
fi
pm_install "$package" || fail "cannot install $package"
command -v nfq-apeeper >/dev/null 2>&1 || [ -x /usr/sbin/nfq-apeeper ] || fail "nfq-apeeper not installed"

args=""
[ -z "$BLACKLIST" ] || args="-b $BLACKLIST"
[ -z "$WHITELIST" ] || args="-w $WHITELIST"
args="$args${EXTRA_ARGS:+ $EXTRA_ARGS}"
mkdir -p /etc/default
install -m 0600 -o root -g root /dev/null /etc/default/nfq-apeeper.new || fail "cannot write /etc/default/nfq-apeeper"
cat >/etc/default/nfq-apeeper.new <<ENV
# Written by the nfq-apeeper user data on $(date -u +%F). See /usr/share/doc/nfq-apeeper/deploy.md.
NFQ_APEEPER_FACTORY=$FACTORY_URL
NFQ_APEEPER_ARGS=${args# }
NFQ_APEEPER_QUEUE_NUM=0
NFQ_APEEPER_RULES_ARGS=
ENV
mv -f /etc/default/nfq-apeeper.new /etc/default/nfq-apeeper || fail "cannot write /etc/default/nfq-apeeper"

systemctl daemon-reload
systemctl enable --now nfq-apeeper.service || fail "systemctl enable --now nfq-apeeper failed: $(systemctl status nfq-apeeper --no-pager 2>&1 | tail -n 5)"
sleep 3
systemctl is-active --quiet nfq-apeeper.service || fail "nfq-apeeper is not running: $(journalctl -u nfq-apeeper -n 5 --no-pager 2>&1)"
/usr/sbin/nfq-apeeper-rules status || true
echo "nfq-apeeper user data: done"
signal 0 "nfq-apeeper is running"
exit 0
