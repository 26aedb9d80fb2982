/* display-none: the front end that shows nothing. The adapter still
 * renders on demand for `modvm ctl SOCK screendump` and the FUSE view's
 * screen.png; nothing is refreshed in between. */
#include <modvm/modvm.h>

static int none_handle; /* open must return non-NULL */

static void *none_open(const struct modvm_host *host, modvm_inst *inst,
		       modvm_display *d)
{
	(void)host;
	(void)inst;
	(void)d;
	return &none_handle;
}

static void none_close(void *fe)
{
	(void)fe;
}

MODVM_PLUGIN_DEFINE(
	.kind = MODVM_KIND_DISPLAY,
	.name = "display-none",
	.version = "1.0.0",
	.description = "Display front end that shows nothing (screendumps still work)",
	.ops = &(const struct modvm_display_ops){
		.size = sizeof(struct modvm_display_ops),
		.open = none_open,
		.close = none_close,
	});
