/* ELF pre-check for plugins: find the descriptor symbol in .dynsym and read
 * its first words from the file image (they are plain integers, not
 * relocated). The file is untrusted: every structure is copied out with a
 * bounds check (offsets in a hostile file need not be aligned). */
#include "elfcheck.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <modvm/plugin.h>

#include "util.h"

struct image {
	const uint8_t *p;
	size_t size;
};

/* Copy len bytes at off into dst; false if outside the file. */
static bool get(const struct image *im, uint64_t off, void *dst, uint64_t len)
{
	if (off > im->size || len > im->size - off)
		return false;
	memcpy(dst, im->p + off, len);
	return true;
}

static bool get_phdr(const struct image *im, const Elf64_Ehdr *eh, unsigned i,
		     Elf64_Phdr *ph)
{
	return get(im, eh->e_phoff + (uint64_t)i * sizeof(*ph), ph, sizeof(*ph));
}

static bool get_shdr(const struct image *im, const Elf64_Ehdr *eh, unsigned i,
		     Elf64_Shdr *sh)
{
	return get(im, eh->e_shoff + (uint64_t)i * sizeof(*sh), sh, sizeof(*sh));
}

/* File offset of virtual address vaddr, through the PT_LOAD segments. */
static int vaddr_to_off(const struct image *im, const Elf64_Ehdr *eh,
			uint64_t vaddr, uint64_t len, uint64_t *off)
{
	Elf64_Phdr ph;

	for (unsigned i = 0; i < eh->e_phnum; i++) {
		if (!get_phdr(im, eh, i, &ph))
			return -1;
		if (ph.p_type != PT_LOAD || vaddr < ph.p_vaddr)
			continue;
		if (vaddr - ph.p_vaddr > ph.p_filesz ||
		    len > ph.p_filesz - (vaddr - ph.p_vaddr))
			continue;
		*off = ph.p_offset + (vaddr - ph.p_vaddr);
		return 0;
	}
	return -1;
}

/* Does the NUL-terminated string at strtab offset n equal name? */
static bool name_at(const struct image *im, const Elf64_Shdr *strsh,
		    uint32_t n, const char *name)
{
	size_t nlen = strlen(name) + 1;
	char buf[64];

	if (nlen > sizeof(buf) || n >= strsh->sh_size || strsh->sh_size - n < nlen)
		return false;
	return get(im, strsh->sh_offset + n, buf, nlen) && !memcmp(buf, name, nlen);
}

static int find_in_dynsym(const struct image *im, const Elf64_Shdr *sh,
			  const Elf64_Shdr *strsh, const char *name,
			  uint64_t *value)
{
	size_t nsyms = sh->sh_size / sizeof(Elf64_Sym);
	Elf64_Sym sym;

	for (size_t s = 0; s < nsyms; s++) {
		if (!get(im, sh->sh_offset + s * sizeof(sym), &sym, sizeof(sym)))
			return -1;
		if (sym.st_shndx == SHN_UNDEF || !name_at(im, strsh, sym.st_name, name))
			continue;
		*value = sym.st_value;
		return 0;
	}
	return -1;
}

static int find_symbol(const struct image *im, const Elf64_Ehdr *eh,
		       const char *name, uint64_t *value, char *err, size_t len)
{
	Elf64_Shdr sh, strsh;

	if (eh->e_shentsize != sizeof(Elf64_Shdr))
		return set_err(err, len, "malformed ELF section headers");
	for (unsigned i = 0; i < eh->e_shnum; i++) {
		if (!get_shdr(im, eh, i, &sh))
			return set_err(err, len, "truncated ELF section headers");
		if (sh.sh_type != SHT_DYNSYM)
			continue;
		if (sh.sh_entsize != sizeof(Elf64_Sym) || sh.sh_link >= eh->e_shnum ||
		    !get_shdr(im, eh, sh.sh_link, &strsh))
			return set_err(err, len, "malformed .dynsym section");
		if (find_in_dynsym(im, &sh, &strsh, name, value) == 0)
			return 0;
	}
	return set_err(err, len, "no %s symbol: not a modvm plugin (a plugin defines it with MODVM_PLUGIN_DEFINE)",
		       name);
}

/* A position-independent executable is ET_DYN too; DF_1_PIE tells it apart. */
static bool is_pie(const struct image *im, const Elf64_Ehdr *eh)
{
	Elf64_Phdr ph;
	Elf64_Dyn dyn;

	for (unsigned i = 0; i < eh->e_phnum; i++) {
		if (!get_phdr(im, eh, i, &ph) || ph.p_type != PT_DYNAMIC)
			continue;
		for (uint64_t k = 0; k < ph.p_filesz / sizeof(dyn); k++) {
			if (!get(im, ph.p_offset + k * sizeof(dyn), &dyn, sizeof(dyn)) ||
			    dyn.d_tag == DT_NULL)
				break;
			if (dyn.d_tag == DT_FLAGS_1 && (dyn.d_un.d_val & DF_1_PIE))
				return true;
		}
	}
	return false;
}

static int check_image(const struct image *im, uint32_t *major,
		       uint32_t *minor, char *err, size_t len)
{
	uint64_t vaddr = 0, off = 0;
	uint32_t words[2];
	Elf64_Ehdr eh;

	if (!get(im, 0, &eh, sizeof(eh)) || memcmp(eh.e_ident, ELFMAG, SELFMAG))
		return set_err(err, len, "not a shared object (no ELF header)");
	if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_machine != EM_X86_64)
		return set_err(err, len, "not an x86-64 ELF object");
	if (eh.e_type != ET_DYN)
		return set_err(err, len, "not a shared object (ELF type %u)", eh.e_type);
	if (eh.e_phentsize != sizeof(Elf64_Phdr))
		return set_err(err, len, "malformed ELF program headers");
	if (is_pie(im, &eh))
		return set_err(err, len, "not a shared object (an executable)");
	if (find_symbol(im, &eh, MODVM_PLUGIN_SYMBOL_NAME, &vaddr, err, len))
		return -1;
	if (vaddr_to_off(im, &eh, vaddr, sizeof(words), &off) ||
	    !get(im, off, words, sizeof(words)))
		return set_err(err, len, "descriptor symbol points outside the file");
	*major = words[0];
	*minor = words[1];
	return 0;
}

int elf_read_plugin_abi(const char *path, uint32_t *major, uint32_t *minor,
			char *err, size_t len)
{
	struct image im;
	struct stat st;
	void *map;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO must not block */
	if (fd < 0)
		return set_err(err, len, "cannot open: %s", strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return set_err(err, len, "not a regular file");
	}
	if (st.st_size == 0) {
		close(fd);
		return set_err(err, len, "not a shared object (empty file)");
	}
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (map == MAP_FAILED)
		return set_err(err, len, "cannot map: %s", strerror(errno));
	im.p = map;
	im.size = (size_t)st.st_size;
	r = check_image(&im, major, minor, err, len);
	munmap(map, im.size);
	return r;
}
