/* Can this host run a KVM engine? The host CPU's vendor (read with CPUID
 * in this process), /dev/kvm and its API version, and whether KVM has
 * hardware assistance behind it. Messages say what to do about a refusal.
 */
#include <cpuid.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvm.h"

#define KVM_API 12 /* the stable KVM API (Documentation/virt/kvm/api.rst) */

int kvm_err(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (err && len) {
		va_start(ap, fmt);
		vsnprintf(err, len, fmt, ap);
		va_end(ap);
	}
	return -1;
}

int kvm_ioctl(int fd, unsigned long req, void *arg)
{
	int r;

	do
		r = ioctl(fd, req, arg);
	while (r < 0 && (errno == EINTR || errno == EAGAIN));
	return r;
}

static void put_reg(char *dst, uint32_t r)
{
	memcpy(dst, &r, 4);
}

void kvm_host_cpu_read(struct kvm_host_cpu *cpu, const struct kvm_vendor *v)
{
	unsigned a, b, c, d, max_ext;

	memset(cpu, 0, sizeof(*cpu));
	__cpuid(0, a, b, c, d);
	put_reg(cpu->vendor, b);
	put_reg(cpu->vendor + 4, d);
	put_reg(cpu->vendor + 8, c);
	__cpuid(0x80000000, max_ext, b, c, d);
	if (max_ext >= 0x80000004) {
		for (unsigned i = 0; i < 3; i++) {
			__cpuid(0x80000002 + i, a, b, c, d);
			put_reg(cpu->brand + 16 * i, a);
			put_reg(cpu->brand + 16 * i + 4, b);
			put_reg(cpu->brand + 16 * i + 8, c);
			put_reg(cpu->brand + 16 * i + 12, d);
		}
	}
	/* Brand strings are padded with leading spaces on some parts. */
	size_t skip = strspn(cpu->brand, " ");
	memmove(cpu->brand, cpu->brand + skip, sizeof(cpu->brand) - skip);
	if (!cpu->brand[0])
		snprintf(cpu->brand, sizeof(cpu->brand), "no brand string");
	if (v && (v->hw_leaf < 0x80000000 || v->hw_leaf <= max_ext)) {
		__cpuid(v->hw_leaf, a, b, c, d);
		cpu->hw_bit = (c >> v->hw_bit) & 1;
	}
}

int kvm_vendor_check(const struct kvm_vendor *v, const struct kvm_host_cpu *cpu,
		     char *why, size_t len)
{
	if (!strcmp(cpu->vendor, v->vendor_id))
		return 0;
	return kvm_err(why, len, "%s needs %s; this host is %s (%s): use %s (or cpu-bt)",
		       v->engine, v->needs, cpu->vendor, cpu->brand,
		       v->other_engine);
}

int kvm_device_check(const char *path, char *why, size_t len)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);
	int version, e = errno;

	if (fd < 0) {
		if (e == ENOENT)
			return kvm_err(why, len,
				       "%s does not exist: this kernel has no KVM (load it with "
				       "modprobe kvm_intel or modprobe kvm_amd, and enable "
				       "virtualization in the firmware), or use cpu-bt", path);
		if (e == EACCES || e == EPERM)
			return kvm_err(why, len,
				       "%s exists but this user may not open it (%s): add the "
				       "user to the group that owns it (usually kvm: sudo "
				       "usermod -aG kvm $USER, then log in again), or use cpu-bt",
				       path, strerror(e));
		if (e == ENXIO || e == ENODEV)
			return kvm_err(why, len,
				       "%s exists but no KVM driver answers (%s): load "
				       "kvm_intel or kvm_amd, or use cpu-bt", path, strerror(e));
		return kvm_err(why, len, "cannot open %s: %s; use cpu-bt", path,
			       strerror(e));
	}
	version = ioctl(fd, KVM_GET_API_VERSION, 0);
	e = errno;
	close(fd);
	if (version < 0)
		return kvm_err(why, len, "%s is not a KVM device (%s)", path, strerror(e));
	if (version != KVM_API)
		return kvm_err(why, len, "%s speaks KVM API version %d; modvm needs %d",
			       path, version, KVM_API);
	return 0;
}

/* Is word one of the space-separated entries of a "flags" line? */
static bool cpuinfo_has_flag(const char *cpuinfo, const char *word)
{
	const char *line = strstr(cpuinfo, "\nflags");
	size_t n = strlen(word);

	if (!strncmp(cpuinfo, "flags", 5))
		line = cpuinfo;
	else if (line)
		line++;
	if (!line)
		return false;
	line = strchr(line, ':');
	while (line && *line && *line != '\n') {
		line += strspn(line, ": \t");
		size_t w = strcspn(line, " \t\n");
		if (w == n && !strncmp(line, word, n))
			return true;
		line += w;
	}
	return false;
}

bool kvm_hw_assisted(const struct kvm_vendor *v, const struct kvm_host_cpu *cpu,
		     const char *cpuinfo, bool modules_pvm)
{
	/* kvm_pvm runs guests with shadow paging and no VMX/SVM at all
	 * (the "Pagetable-based Virtual Machine"); so does any KVM on a
	 * CPU that does not advertise the extension. */
	if (modules_pvm || !cpu->hw_bit)
		return false;
	return !cpuinfo || cpuinfo_has_flag(cpuinfo, v->hw_flag);
}

static char *read_text(const char *path)
{
	FILE *f = fopen(path, "re");
	size_t cap = 1 << 16, n = 0, r;
	char *buf;

	if (!f)
		return NULL;
	buf = malloc(cap + 1);
	while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
		n += r;
		if (n == cap) {
			char *nb = realloc(buf, 2 * cap + 1);
			if (!nb) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
			cap *= 2;
		}
	}
	fclose(f);
	if (buf)
		buf[n] = 0;
	return buf;
}

static bool pvm_loaded(void)
{
	struct stat st;
	char *mods;
	bool found = false;

	if (stat("/sys/module/kvm_pvm", &st) == 0)
		return true;
	mods = read_text("/proc/modules");
	if (mods)
		found = !strncmp(mods, "kvm_pvm ", 8) || strstr(mods, "\nkvm_pvm ");
	free(mods);
	return found;
}

int kvm_probe(const struct kvm_vendor *v, const char *path, char *why,
	      size_t len)
{
	struct kvm_host_cpu cpu;

	kvm_host_cpu_read(&cpu, v);
	if (kvm_vendor_check(v, &cpu, why, len) ||
	    kvm_device_check(path, why, len))
		return -1;
	if (!kvm_host_hw_assisted(v))
		snprintf(why, len, "%s", KVM_NO_HW_NOTE);
	return 0;
}

static const struct kvm_vendor any_vmx = { .hw_flag = "vmx", .hw_leaf = 1, .hw_bit = 5 };
static const struct kvm_vendor any_svm = { .hw_flag = "svm", .hw_leaf = 0x80000001,
					   .hw_bit = 2 };

/* v NULL: either extension will do (callers that are no engine). */
bool kvm_host_hw_assisted(const struct kvm_vendor *v)
{
	struct kvm_host_cpu cpu;
	char *cpuinfo;
	bool hw;

	if (!v)
		return kvm_host_hw_assisted(&any_vmx) || kvm_host_hw_assisted(&any_svm);
	cpuinfo = read_text("/proc/cpuinfo");
	kvm_host_cpu_read(&cpu, v);
	hw = kvm_hw_assisted(v, &cpu, cpuinfo, pvm_loaded());
	free(cpuinfo);
	return hw;
}
