/* bios: a system firmware ROM (SeaBIOS's bios.bin or bios-256k.bin) where
 * a PC has it: the whole image ends at 4 GiB, so the reset vector
 * (FFFFFFF0) is its last 16 bytes, and its last 128 KiB also appear at
 * 0xE0000-0xFFFFF. The high copy is read-only MMIO; the low one is guest RAM
 * filled from the image at start and at every platform reset, which is what
 * an i440FX gives after reset with its PAM registers (0x59-0x5F) pointing
 * the shadow area at the ROM and SeaBIOS then copying itself into shadow
 * RAM. modvm does not make the shadow read-only again (docs/devices/bios.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <modvm/modvm.h>

#define ROM_UNIT       0x10000u           /* images are 64 KiB multiples */
#define ROM_WINDOW     0x1000000u         /* 16 MiB below 4 GiB: FF000000- */
#define ROM_TOP        0x100000000ull
#define SHADOW_END     0x100000u          /* 1 MiB */
#define SHADOW_MAX     0x20000u           /* 0xE0000-0xFFFFF */

struct bios {
	struct modvm_dev dev;
	const char *rom_path;  /* property "rom" */
	uint8_t *rom;
	uint32_t size;
	bool warned_write;
};

static uint32_t shadow_len(const struct bios *b)
{
	return b->size < SHADOW_MAX ? b->size : SHADOW_MAX;
}

/* The low alias: the image's last bytes below 1 MiB, in RAM. */
static int shadow_fill(struct bios *b)
{
	uint32_t len = shadow_len(b);

	return b->dev.host->mem_write(b->dev.inst, SHADOW_END - len,
				      b->rom + b->size - len, len);
}

static uint64_t rom_read(void *opaque, uint64_t off, unsigned size)
{
	const struct bios *b = opaque;
	uint64_t v = 0;

	/* The core never issues an access past the region; stay safe if
	 * it ever did. */
	if (off >= b->size || size > 8 || size > b->size - off)
		return ~0ull;
	memcpy(&v, b->rom + off, size);
	return v;
}

static void rom_write(void *opaque, uint64_t off, uint64_t v, unsigned size)
{
	struct bios *b = opaque;

	(void)v;
	(void)size;
	if (!b->warned_write) {
		b->warned_write = true;
		modvm_log(b->dev.host, b->dev.inst, MODVM_LOG_DEBUG,
			  "guest wrote to ROM at 0x%llx: ignored (logged once)",
			  (unsigned long long)(ROM_TOP - b->size + off));
	}
}

static const struct modvm_io_ops rom_ops = { rom_read, rom_write };

/* The image, checked before anything is mapped: a regular file, a
 * multiple of 64 KiB, no larger than the 16 MiB window below 4 GiB. */
static int rom_load(struct bios *b)
{
	const struct modvm_host *h = b->dev.host;
	const char *path = b->rom_path;
	struct stat st;
	ssize_t got;
	int fd;

	if (!path[0]) {
		h->set_error(b->dev.inst, "no firmware image: set rom = \"/usr/share/seabios/bios-256k.bin\" (Debian package seabios)");
		return -1;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		h->set_error(b->dev.inst, "rom %s: %s%s", path, strerror(errno),
			     errno == ENOENT ? " (install Debian package seabios, or point rom at a BIOS image)" : "");
		return -1;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		h->set_error(b->dev.inst, "rom %s is not a regular file", path);
		goto fail;
	}
	if (st.st_size == 0 || st.st_size % ROM_UNIT ||
	    st.st_size > ROM_WINDOW) {
		h->set_error(b->dev.inst, "rom %s is %lld bytes: a firmware image is a multiple of 64 KiB and at most 16 MiB (the window below 4 GiB); is it a BIOS image?",
			     path, (long long)st.st_size);
		goto fail;
	}
	b->size = (uint32_t)st.st_size;
	b->rom = malloc(b->size);
	if (!b->rom) {
		h->set_error(b->dev.inst, "out of memory for rom %s", path);
		goto fail;
	}
	got = pread(fd, b->rom, b->size, 0);
	if (got != (ssize_t)b->size) {
		h->set_error(b->dev.inst, "rom %s: short read (%lld of %u bytes)",
			     path, (long long)got, b->size);
		goto fail;
	}
	close(fd);
	return 0;
fail:
	close(fd);
	return -1;
}

static void bios_destroy(void *dev)
{
	struct bios *b = dev;

	free(b->rom);
	b->rom = NULL;
}

static int bios_init(void *dev)
{
	struct bios *b = dev;
	const struct modvm_host *h = b->dev.host;

	if (rom_load(b))
		goto fail;
	if (h->mem_size(b->dev.inst) < SHADOW_END) {
		h->set_error(b->dev.inst, "a firmware boot needs at least 1 MiB of RAM (memory = \"16M\" or more)");
		goto fail;
	}
	if (!h->mmio_register(b->dev.inst, ROM_TOP - b->size, b->size, &rom_ops, b))
		goto fail;
	if (shadow_fill(b)) {
		h->set_error(b->dev.inst, "cannot write the BIOS shadow at 0x%x", SHADOW_END - shadow_len(b));
		goto fail;
	}
	return 0;
fail:
	bios_destroy(b);
	return -1;
}

/* Platform reset: the shadow area shows the ROM again, as after the PAM
 * registers return to their reset value. */
static void bios_reset(void *dev)
{
	struct bios *b = dev;

	if (shadow_fill(b))
		modvm_log(b->dev.host, b->dev.inst, MODVM_LOG_ERROR,
			  "cannot restore the BIOS shadow");
	b->warned_write = false;
}

#define B struct bios
MODVM_DEVICE_DEFINE(.name = "bios", .version = "1.0.0",
	.description = "System firmware ROM (SeaBIOS) ending at 4 GiB, its last 128 KiB shadowed at 0xE0000",
	.props = MODVM_PROPS(
		MODVM_PROP_STRING(B, rom_path, "rom", "/usr/share/seabios/bios-256k.bin",
				  "firmware image: a multiple of 64 KiB, at most 16 MiB (Debian seabios: bios.bin, bios-256k.bin)")),
	.ops = MODVM_DEVICE_OPS(B, .init = bios_init, .destroy = bios_destroy,
				.reset = bios_reset));
#undef B
