# nfq-apeeper %preun ($1: 0 = erase, 1 = upgrade). On erase: stop and disable the service and
# remove the firewall rules (kept on a plain stop: queue bypass makes them harmless).
if [ "$1" -eq 0 ]; then
  if [ -d /run/systemd/system ]; then
    systemctl stop nfq-apeeper.service >/dev/null 2>&1 || :
    systemctl disable nfq-apeeper.service >/dev/null 2>&1 || :
  fi
  if [ -x /usr/sbin/nfq-apeeper-rules ]; then
    /usr/sbin/nfq-apeeper-rules remove >/dev/null 2>&1 || :
  fi
fi
exit 0
