/* nfq_accept_all: the benchmark floor. Binds one NFQUEUE and ACCEPTs every packet at once,
 * doing nothing else, so the cost of the queue round trip itself can be measured and the lab
 * has a consumer before the daemon exists.
 *   nfq_accept_all [--batch] [--daemon-flags] [QUEUE_NUM]   (default 0; stops on SIGINT/SIGTERM)
 * Default: one read and one verdict per packet. --batch: like the daemon, one recvmmsg takes
 * every datagram waiting (up to 16) and one batch verdict accepts them all, so the floor has
 * the daemon's system calls and nothing else. --daemon-flags: the kernel also adds the socket's
 * UID/GID to every packet, as the daemon asks, to tell that kernel cost apart from the
 * daemon's own work (the daemon's conntrack tuples are left out: kernels without
 * nf_conntrack_netlink refuse them, and the daemon then runs without).
 * Fail-open is on (the kernel accepts packets when the queue is full) and the copy range is
 * 0xffff with GSO, like the daemon. Exit 1 with one line on stderr when it cannot bind. */
#define _GNU_SOURCE /* recvmmsg */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>

#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <libnetfilter_queue/libnetfilter_queue.h>

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

struct ctx {
	struct mnl_socket *nl;
	unsigned long accepted;
	int batch;              /* --batch: remember the newest id instead of answering each */
	uint32_t newest_id;
	int have_id;
};

static int queue_cb(const struct nlmsghdr *nlh, void *data)
{
	struct ctx *c = data;
	struct nlattr *attr[NFQA_MAX + 1] = {0};
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nfqnl_msg_packet_hdr *ph;
	struct nfgenmsg *nfg = mnl_nlmsg_get_payload(nlh);
	struct nlmsghdr *out;

	if (nfq_nlmsg_parse(nlh, attr) < 0 || attr[NFQA_PACKET_HDR] == NULL)
		return MNL_CB_OK; /* not a packet; nothing to verdict */
	ph = mnl_attr_get_payload(attr[NFQA_PACKET_HDR]);
	c->accepted++;
	if (c->batch) {
		/* Ids grow in queue order: a batch verdict for the newest covers every earlier one. */
		if (!c->have_id || (int32_t)(ntohl(ph->packet_id) - c->newest_id) > 0)
			c->newest_id = ntohl(ph->packet_id);
		c->have_id = 1;
		return MNL_CB_OK;
	}
	out = nfq_nlmsg_put(buf, NFQNL_MSG_VERDICT, ntohs(nfg->res_id));
	nfq_nlmsg_verdict_put(out, ntohl(ph->packet_id), NF_ACCEPT);
	if (mnl_socket_sendto(c->nl, out, out->nlmsg_len) < 0)
		perror("nfq_accept_all: verdict");
	return MNL_CB_OK;
}

static int send_cfg(struct mnl_socket *nl, struct nlmsghdr *nlh)
{
	return mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0 ? -1 : 0;
}

int main(int argc, char **argv)
{
	enum { kMaxBatch = 16 };
	struct ctx c = {0};
	int argi = 1;
	uint32_t flags = NFQA_CFG_F_GSO | NFQA_CFG_F_FAIL_OPEN;
	for (; argi < argc && argv[argi][0] == '-' && argv[argi][1] == '-'; ++argi) {
		if (strcmp(argv[argi], "--batch") == 0)
			c.batch = 1;
		else if (strcmp(argv[argi], "--daemon-flags") == 0)
			flags |= NFQA_CFG_F_UID_GID;
		else
			break;
	}
	char *end = NULL;
	unsigned long queue_arg = argi < argc ? strtoul(argv[argi], &end, 10) : 0;
	/* A stale script passing an option this build lacks must not be taken for queue 0. */
	if (argc > argi + 1 || (argi < argc && (*argv[argi] == '\0' || *end != '\0' || queue_arg > 65535))) {
		fprintf(stderr, "usage: nfq_accept_all [--batch] [--daemon-flags] [QUEUE_NUM]\n");
		return 2;
	}
	unsigned int queue_num = (unsigned int)queue_arg;
	size_t bufsize = 0xffff + (MNL_SOCKET_BUFFER_SIZE / 2);
	char *buf = malloc(bufsize * kMaxBatch);
	struct mmsghdr msgs[kMaxBatch];
	struct iovec iov[kMaxBatch];
	struct nlmsghdr *nlh;
	unsigned int portid;
	struct sigaction sa;
	int one = 1, rcvbuf = 8 << 20;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal; /* no SA_RESTART: recv returns EINTR so we can stop */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	c.nl = mnl_socket_open(NETLINK_NETFILTER);
	if (buf == NULL || c.nl == NULL || mnl_socket_bind(c.nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		fprintf(stderr, "nfq_accept_all: cannot open netfilter netlink socket: %s (needs CAP_NET_ADMIN)\n",
			strerror(errno));
		return 1;
	}
	portid = mnl_socket_get_portid(c.nl);
	setsockopt(mnl_socket_get_fd(c.nl), SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf);
	mnl_socket_setsockopt(c.nl, NETLINK_NO_ENOBUFS, &one, sizeof one);

	nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, queue_num);
	nfq_nlmsg_cfg_put_cmd(nlh, AF_INET, NFQNL_CFG_CMD_BIND);
	if (send_cfg(c.nl, nlh) < 0) {
		fprintf(stderr, "nfq_accept_all: cannot bind queue %u: %s\n", queue_num, strerror(errno));
		return 1;
	}
	nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, queue_num);
	nfq_nlmsg_cfg_put_params(nlh, NFQNL_COPY_PACKET, 0xffff);
	mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS, htonl(flags));
	mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(flags));
	if (send_cfg(c.nl, nlh) < 0) {
		fprintf(stderr, "nfq_accept_all: cannot configure queue %u: %s\n", queue_num, strerror(errno));
		return 1;
	}
	while (!stop) {
		int datagrams = 1;
		ssize_t lengths[kMaxBatch];

		if (c.batch) {
			memset(msgs, 0, sizeof msgs);
			for (int i = 0; i < kMaxBatch; ++i) {
				iov[i].iov_base = buf + (size_t)i * bufsize;
				iov[i].iov_len = bufsize;
				msgs[i].msg_hdr.msg_iov = &iov[i];
				msgs[i].msg_hdr.msg_iovlen = 1;
			}
			/* MSG_WAITFORONE: block for the first, then take only what is already waiting. */
			datagrams = recvmmsg(mnl_socket_get_fd(c.nl), msgs, kMaxBatch, MSG_WAITFORONE, NULL);
			for (int i = 0; i < datagrams; ++i)
				lengths[i] = (ssize_t)msgs[i].msg_len;
		} else {
			lengths[0] = mnl_socket_recvfrom(c.nl, buf, bufsize);
			datagrams = lengths[0] < 0 ? -1 : 1;
		}
		if (datagrams < 0) {
			if (errno == EINTR || errno == ENOBUFS)
				continue;
			perror("nfq_accept_all: recv");
			break;
		}
		c.have_id = 0;
		for (int i = 0; i < datagrams; ++i) {
			/* Config errors (queue already bound: EBUSY; no CAP_NET_ADMIN: EPERM) come back
			 * as netlink error messages, which mnl_cb_run turns into -1 with errno set. */
			if (mnl_cb_run(buf + (size_t)i * bufsize, (size_t)lengths[i], 0, portid, queue_cb, &c) < 0 &&
			    errno != EINTR) {
				fprintf(stderr, "nfq_accept_all: queue %u: %s (already bound by another process?)\n",
					queue_num, strerror(errno));
				return 1;
			}
		}
		if (c.batch && c.have_id) {
			char out_buf[MNL_SOCKET_BUFFER_SIZE];
			struct nlmsghdr *out = nfq_nlmsg_put(out_buf, NFQNL_MSG_VERDICT_BATCH, queue_num);

			nfq_nlmsg_verdict_put(out, c.newest_id, NF_ACCEPT);
			if (mnl_socket_sendto(c.nl, out, out->nlmsg_len) < 0)
				perror("nfq_accept_all: batch verdict");
		}
	}
	fprintf(stderr, "nfq_accept_all: accepted %lu packets\n", c.accepted);
	mnl_socket_close(c.nl);
	free(buf);
	return 0;
}
