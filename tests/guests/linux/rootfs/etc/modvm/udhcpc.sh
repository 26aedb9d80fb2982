#!/bin/sh
# udhcpc's event script for the net test scripts: configure the interface,
# the default route and the resolver from the lease (busybox udhcpc
# passes the lease in the environment).
case "$1" in
deconfig)
	ifconfig "$interface" 0.0.0.0
	;;
bound | renew)
	ifconfig "$interface" "$ip" netmask "${subnet:-255.255.255.0}"
	[ -z "$router" ] || route add default gw "${router%% *}" dev "$interface"
	: >/etc/resolv.conf
	for d in $dns; do echo "nameserver $d" >>/etc/resolv.conf; done
	echo "udhcpc: lease $ip/${subnet:-?} router ${router:-none} dns ${dns:-none}"
	;;
esac
exit 0
