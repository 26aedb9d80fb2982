/* chardev-serial: UART line settings and modem lines to and from termios,
 * as pure functions so tests can check them without a serial port. */
#ifndef MODVM_CHARDEV_TERMIOS_MAP_H
#define MODVM_CHARDEV_TERMIOS_MAP_H

#include <stdint.h>
#include <termios.h>

#include <modvm/chardev.h>

/* The standard termios speed nearest to baud (smallest relative error);
 * *actual gets its rate in bits per second. */
speed_t serial_speed_nearest(uint32_t baud, uint32_t *actual);
/* Apply data bits, parity, stop bits and speed to t (other flags kept). */
void serial_params_to_termios(const struct modvm_serial_params *p,
			      struct termios *t);
/* MODVM_MODEM_DTR/RTS -> TIOCM_DTR/RTS, and TIOCM_* inputs -> MODVM_MODEM_*. */
int serial_modem_to_tiocm(unsigned lines);
unsigned serial_tiocm_to_modem(int tiocm);

#endif
