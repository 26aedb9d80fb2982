/* A small pool of worker threads that runs block requests for a backend
 * and hands completions back on the modvm event loop (an eventfd watch),
 * so a vCPU never waits for the disk. Shared by the block backends. */
#ifndef MODVM_DISK_BLOCKPOOL_H
#define MODVM_DISK_BLOCKPOOL_H

#include <modvm/block.h>
#include <modvm/host.h>

struct blockpool;

/* exec runs one request synchronously in a worker: 0 or -errno. */
typedef int (*blockpool_exec)(void *be, struct modvm_block_req *req);

/* NULL after host->set_error(). */
struct blockpool *blockpool_new(const struct modvm_host *host,
				modvm_inst *inst, unsigned workers,
				blockpool_exec exec, void *be);
int blockpool_submit(struct blockpool *p, struct modvm_block_req *req);
/* Wait for every queued request and run their callbacks now. */
void blockpool_drain(struct blockpool *p);
/* Wait for requests in flight (callbacks not run), stop the workers. */
void blockpool_free(struct blockpool *p);

#endif
