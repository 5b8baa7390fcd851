# nfq-apeeper %post ($1: 1 = install, 2+ = upgrade). Starts nothing: enabling is the
# administrator's decision. The restart on upgrade is in %postun (runs after the old files go).
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || :
fi
exit 0
