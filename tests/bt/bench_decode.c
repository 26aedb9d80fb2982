/* cpu-bt decoder benchmark: decodes the .text section of an ELF file
 * (default /bin/bash) linearly with the cpu-bt decoder and, if built with
 * Zydis, with Zydis too; prints speed and where the lengths disagree.
 * Usage: bt-bench-decode [file] [passes]
 */
#include <elf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "decode.h"
#ifdef HAVE_ZYDIS
#include <Zydis/Zydis.h>
#endif

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint8_t *load_text(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	Elf64_Ehdr eh;
	Elf64_Shdr *sh;
	uint8_t *text = NULL;

	if (!f || fread(&eh, sizeof(eh), 1, f) != 1)
		return NULL;
	sh = calloc(eh.e_shnum, sizeof(*sh));
	fseek(f, (long)eh.e_shoff, SEEK_SET);
	if (fread(sh, sizeof(*sh), eh.e_shnum, f) != eh.e_shnum)
		return NULL;
	char *names = malloc(sh[eh.e_shstrndx].sh_size);
	fseek(f, (long)sh[eh.e_shstrndx].sh_offset, SEEK_SET);
	if (fread(names, 1, sh[eh.e_shstrndx].sh_size, f) != sh[eh.e_shstrndx].sh_size)
		return NULL;
	for (int i = 0; i < eh.e_shnum; i++) {
		if (strcmp(names + sh[i].sh_name, ".text"))
			continue;
		text = malloc(sh[i].sh_size);
		*len = sh[i].sh_size;
		fseek(f, (long)sh[i].sh_offset, SEEK_SET);
		if (fread(text, 1, *len, f) != *len)
			return NULL;
	}
	free(names);
	free(sh);
	fclose(f);
	return text;
}

int main(int argc, char **argv)
{
	const char *path = argc > 1 ? argv[1] : "/bin/bash";
	int passes = argc > 2 ? atoi(argv[2]) : 20;
	size_t len = 0, n = 0;
	uint8_t *text = load_text(path, &len);
	struct bt_insn in;
	double t;

	if (!text) {
		fprintf(stderr, "cannot read .text of %s\n", path);
		return 1;
	}
	t = now();
	for (int p = 0; p < passes; p++) {
		n = 0;
		for (size_t off = 0; off < len; n++) {
			int r = bt_decode(text + off, len - off, BT_MODE64, &in);
			off += r > 0 ? (size_t)r : (in.len ? in.len : 1);
		}
	}
	t = now() - t;
	printf("%s: %zu bytes of .text, %zu instructions\n", path, len, n);
	printf("cpu-bt: %.1f ns/insn, %.0f Minsn/s\n", t * 1e9 / ((double)n * passes),
	       (double)n * passes / t / 1e6);
#ifdef HAVE_ZYDIS
	ZydisDecoder zd;
	ZydisDecodedInstruction zi;
	size_t zn = 0, mism = 0, shown = 0, ud = 0;

	ZydisDecoderInit(&zd, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
	t = now();
	for (int p = 0; p < passes; p++) {
		zn = 0;
		for (size_t off = 0; off < len; zn++) {
			if (ZYAN_SUCCESS(ZydisDecoderDecodeInstruction(&zd, NULL, text + off,
								      len - off, &zi)))
				off += zi.length;
			else
				off++;
		}
	}
	t = now() - t;
	printf("zydis (no operands): %.1f ns/insn, %.0f Minsn/s\n",
	       t * 1e9 / ((double)zn * passes), (double)zn * passes / t / 1e6);
	ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
	t = now();
	for (int p = 0; p < passes; p++) {
		for (size_t off = 0; off < len;) {
			if (ZYAN_SUCCESS(ZydisDecoderDecodeFull(&zd, text + off, len - off,
							       &zi, ops)))
				off += zi.length;
			else
				off++;
		}
	}
	t = now() - t;
	printf("zydis (full operands): %.1f ns/insn\n", t * 1e9 / ((double)zn * passes));
	/* Accuracy: walk with Zydis lengths, compare ours at each start. */
	for (size_t off = 0; off < len;) {
		int ok = ZYAN_SUCCESS(ZydisDecoderDecodeInstruction(&zd, NULL, text + off,
								    len - off, &zi));
		int r = bt_decode(text + off, len - off, BT_MODE64, &in);
		int ours = r > 0 ? r : (r == BT_DEC_UD ? in.len : 0);
		if (r == BT_DEC_UD)
			ud++;
		if (ok && ours != zi.length) {
			mism++;
			if (shown++ < 20) {
				printf("mismatch at %#zx: zydis %d ours %d (r=%d):", off,
				       zi.length, ours, r);
				for (int i = 0; i < 8 && off + i < len; i++)
					printf(" %02x", text[off + i]);
				printf("\n");
			}
		}
		off += ok ? zi.length : 1;
	}
	printf("length mismatches: %zu of %zu; cpu-bt #UD (unimplemented or invalid): %zu\n",
	       mism, zn, ud);
#endif
	free(text);
	return 0;
}
