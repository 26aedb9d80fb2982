/* Copies between flat buffers and iovec arrays (a virtio element's
 * host iovecs into guest RAM), and slices of them, for device plugins. */
#ifndef MODVM_PLUGIN_LIB_IOV_H
#define MODVM_PLUGIN_LIB_IOV_H

#include <stddef.h>
#include <string.h>
#include <sys/uio.h>

/* Copy up to len bytes from iov, starting skip bytes in, to buf; returns
 * the count. */
static inline size_t iov_copy_from(const struct iovec *iov, unsigned n,
				   size_t skip, void *buf, size_t len)
{
	size_t done = 0;

	for (unsigned i = 0; i < n && done < len; i++) {
		size_t l = iov[i].iov_len;
		if (skip >= l) {
			skip -= l;
			continue;
		}
		size_t c = l - skip < len - done ? l - skip : len - done;
		memcpy((char *)buf + done, (char *)iov[i].iov_base + skip, c);
		done += c;
		skip = 0;
	}
	return done;
}

/* Copy len bytes of buf to the start of iov (fewer if it is shorter);
 * returns the count. */
static inline size_t iov_copy_to(const struct iovec *iov, unsigned n,
				 const void *buf, size_t len)
{
	size_t done = 0;

	for (unsigned i = 0; i < n && done < len; i++) {
		size_t c = iov[i].iov_len < len - done ? iov[i].iov_len : len - done;
		memcpy(iov[i].iov_base, (const char *)buf + done, c);
		done += c;
	}
	return done;
}

/* out = the bytes [skip, skip+len) of iov; returns the count. */
static inline int iov_slice(const struct iovec *iov, unsigned n, size_t skip,
			    size_t len, struct iovec *out)
{
	int k = 0;

	for (unsigned i = 0; i < n && len; i++) {
		size_t l = iov[i].iov_len;
		if (skip >= l) {
			skip -= l;
			continue;
		}
		size_t c = l - skip < len ? l - skip : len;
		out[k].iov_base = (char *)iov[i].iov_base + skip;
		out[k++].iov_len = c;
		len -= c;
		skip = 0;
	}
	return k;
}

#endif
