/* modvm SDK: everything a plugin needs, in one include. */
#ifndef MODVM_MODVM_H
#define MODVM_MODVM_H

#include <modvm/plugin.h>
#include <modvm/props.h>
#include <modvm/state.h>
#include <modvm/host.h>
#include <modvm/device.h>
#include <modvm/chardev.h>
#include <modvm/cpu.h>
#include <modvm/pc.h>
#include <modvm/pci.h>
#include <modvm/virtio.h>
#include <modvm/block.h>
#include <modvm/net.h>
#include <modvm/display.h>
#include <modvm/input.h>

#endif
