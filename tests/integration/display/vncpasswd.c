/* Writes a VNC password file (the format vncsnapshot -passwd reads) with
 * libvncserver's own rfbEncryptAndStorePasswd, for the display tests.
 * usage: vncpasswd PASSWORD FILE */
#include <stdio.h>

#include <rfb/rfb.h>

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: vncpasswd PASSWORD FILE\n");
		return 2;
	}
	if (rfbEncryptAndStorePasswd(argv[1], argv[2])) {
		fprintf(stderr, "vncpasswd: cannot write %s\n", argv[2]);
		return 1;
	}
	return 0;
}
