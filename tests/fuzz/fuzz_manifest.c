/* Fuzz target: the snapshot manifest parser (snapshot_open in
 * core/snapshot.c) on arbitrary manifest.json contents, memory not
 * verified. The input is written as manifest.json into a temporary
 * directory made once, next to the files a small snapshot has (config.cfg,
 * one device state file, memory.img), so a manifest that names them with
 * the right sizes and checksums gets through to the file checks. Whatever
 * the outcome, snapshot_close frees everything. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "snapshot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];
static char manifest[96];

static void put(const char *name, const void *buf, size_t n, off_t size)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f)
		abort();
	if (n)
		fwrite(buf, 1, n, f);
	if (size && ftruncate(fileno(f), size))
		abort();
	fclose(f);
}

static void cleanup(void)
{
	static const char *const names[] = {
		"manifest.json", "config.cfg", "device-com1.state", "memory.img",
	};
	char path[128];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
}

static void setup(void)
{
	/* the seeds' manifests list these sizes and CRC-32Cs */
	static const char cfg[] = "name = \"fuzz\";\nmemory = \"1M\";\n";
	static const char state[] = "uart state bytes";

	snprintf(dir, sizeof(dir), "/tmp/modvm-fuzz-manifest-XXXXXX");
	if (!mkdtemp(dir))
		abort();
	snprintf(manifest, sizeof(manifest), "%s/manifest.json", dir);
	put("config.cfg", cfg, sizeof(cfg) - 1, 0);
	put("device-com1.state", state, sizeof(state) - 1, 0);
	put("memory.img", NULL, 0, 1 << 20); /* sparse */
	atexit(cleanup);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct snapshot s;
	char err[1024];
	FILE *f;

	if (!dir[0])
		setup();
	f = fopen(manifest, "wb");
	if (!f)
		return 0;
	fwrite(data, 1, size, f);
	fclose(f);
	snapshot_open(dir, false, &s, err, sizeof(err));
	snapshot_close(&s);
	return 0;
}
