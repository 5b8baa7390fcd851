# nfq-apeeper %postun ($1: 0 = erase, 1 = upgrade). RPM has no purge: on erase the token and
# spool go too (a changed /etc/default/nfq-apeeper is kept as .rpmsave by %config(noreplace)).
# On upgrade a running service is restarted on the new binary (try-restart never starts it).
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || :
fi
if [ "$1" -eq 0 ]; then
  rm -rf /var/lib/nfq-apeeper /var/lib/private/nfq-apeeper
elif [ -d /run/systemd/system ]; then
  systemctl try-restart nfq-apeeper.service >/dev/null 2>&1 || :
fi
exit 0
