/* The live migration stream (docs/migration.md, "Stream format"): framing
 * of checksummed records, and the destination's parser, which treats the
 * stream as hostile input and hands checked pages and state to a sink. */
#ifndef MODVM_CORE_MIGSTREAM_H
#define MODVM_CORE_MIGSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MIG_MAGIC "MODVMMIG"   /* 8 bytes, then u32 format */
#define MIG_FORMAT 1
#define MIG_PAGE 4096u
#define MIG_BATCH 256u         /* pages in one PAGES record, at most */
/* The largest record payload: a full PAGES record. */
#define MIG_REC_MAX (8u + MIG_BATCH * 8u + MIG_BATCH * MIG_PAGE)
/* The largest state of one device or vCPU the destination accepts. */
#define MIG_STATE_MAX (16u << 20)

enum mig_rec_type {
	MIG_HELLO = 1,  /* source -> destination: JSON machine description */
	MIG_ANSWER = 2, /* destination -> source: JSON {"ok": bool, "reason"} */
	MIG_PAGES = 3,  /* u32 count, u32 0, count x u64 page, count x 4 KiB */
	MIG_ZERO = 4,   /* u64 first page, u64 count: pages that are all zero */
	MIG_STATE = 5,  /* u32 kind (0 device, 1 vCPU), u32 index, sections */
	MIG_CLOCK = 6,  /* u64 virtual ns, i64 wall-clock ns at virtual 0 */
	MIG_END = 7,    /* empty: everything was sent */
	MIG_ITER = 8,   /* u32 iteration number starting: informational */
	MIG_SYNC = 9,   /* empty; the destination sends one back once it has
			 * taken everything before it (the source stops the
			 * guest only then: nothing queued adds to the stop) */
};

/* Where records go and come from: write/read exactly n bytes, 0 or -1
 * (errno set; read: 0 bytes at the end of the stream is -1, errno 0). */
struct mig_io {
	int (*read)(void *opaque, void *buf, size_t n);
	int (*write)(void *opaque, const void *buf, size_t n);
	void *opaque;
};

/* Record: u8 type | u8 0 | u16 0 | u32 payload length | payload | u32
 * CRC-32 (zlib) of everything before it in the record. */
int mig_write_record(struct mig_io *io, unsigned type, const void *payload,
		     size_t len);
/* Read one record into buf (MIG_REC_MAX bytes). -1 with err set if the
 * stream ended, the header is malformed, the length is beyond
 * MIG_REC_MAX or the checksum does not match. */
int mig_read_record(struct mig_io *io, unsigned *type, uint8_t *buf,
		    size_t *len, char *err, size_t err_len);
int mig_write_preamble(struct mig_io *io);
int mig_read_preamble(struct mig_io *io, char *err, size_t err_len);

/* What the destination's parser feeds. */
struct mig_sink {
	uint64_t npages;   /* guest RAM pages; every page number is checked */
	unsigned ndevices; /* device states expected (index < ndevices) */
	unsigned ncpus;
	/* The source's description (JSON text, NUL-terminated): 0 to go
	 * on, or -1 with a reason the source is told. */
	int (*hello)(void *opaque, const char *json, char *reason, size_t len);
	/* n pages, page numbers checked; data NULL: they are all zero. */
	void (*pages)(void *opaque, const uint64_t *page, size_t n,
		      const uint8_t *data);
	void (*zero)(void *opaque, uint64_t first, uint64_t count);
	void *opaque;
};

/* What arrived besides RAM, kept until the stream is complete. */
struct mig_received {
	uint8_t **dev;     /* ndevices states (NULL: not yet) */
	size_t *dev_len;
	uint8_t **cpu;     /* ncpus states */
	size_t *cpu_len;
	bool clock;
	uint64_t virtual_ns;
	int64_t boot_wall_ns;
	uint64_t data_pages, zero_pages, records;
	unsigned iterations;
};

void mig_received_init(struct mig_received *r, const struct mig_sink *s);
void mig_received_free(struct mig_received *r, const struct mig_sink *s);

/* The destination's side of a stream up to END: preamble, HELLO (the
 * ANSWER is written here: a refusal ends the stream with the reason),
 * then pages and state. Returns 0 once END arrived with every device and
 * vCPU state and the clock; -1 with err otherwise. The caller loads the
 * state and writes the final ANSWER. */
int mig_receive(struct mig_io *io, const struct mig_sink *s,
		struct mig_received *r, char *err, size_t err_len);

/* Write an ANSWER: ok, or the reason for a refusal. */
int mig_answer(struct mig_io *io, bool ok, const char *reason);
/* Parse an ANSWER payload: 0 ok, -1 with the reason (or why it is not
 * an answer) in reason. */
int mig_parse_answer(const uint8_t *buf, size_t len, char *reason,
		     size_t reason_len);

#endif
