/* Every public SDK name is prefixed: a plugin may include the Linux UAPI
 * virtio headers beside <modvm/...> under -Werror (no redefinitions), and
 * the SDK's virtio constants agree with the kernel's. */
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <linux/virtio_ids.h>

#include <modvm/modvm.h>
#include <modvm/virtio.h>
#include <modvm/pci.h>
#include <modvm/block.h>

#include "testmain.h"

static void test_virtio_constants_match_linux(void)
{
	CU_ASSERT_EQUAL(MODVM_VIRTIO_CONFIG_S_ACKNOWLEDGE, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	CU_ASSERT_EQUAL(MODVM_VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_DRIVER);
	CU_ASSERT_EQUAL(MODVM_VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_DRIVER_OK);
	CU_ASSERT_EQUAL(MODVM_VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_CONFIG_S_FEATURES_OK);
	CU_ASSERT_EQUAL(MODVM_VIRTIO_CONFIG_S_NEEDS_RESET, VIRTIO_CONFIG_S_NEEDS_RESET);
	CU_ASSERT_EQUAL(MODVM_VIRTIO_CONFIG_S_FAILED, VIRTIO_CONFIG_S_FAILED);
	CU_ASSERT_EQUAL(MODVM_VIRTIO_F_VERSION_1, VIRTIO_F_VERSION_1);
	CU_ASSERT_EQUAL(MODVM_VIRTIO_F_RING_INDIRECT_DESC, VIRTIO_RING_F_INDIRECT_DESC);
	CU_ASSERT_EQUAL(MODVM_VIRTIO_F_RING_EVENT_IDX, VIRTIO_RING_F_EVENT_IDX);
	CU_ASSERT_EQUAL(MODVM_VIRTIO_ID_NET, VIRTIO_ID_NET);
	CU_ASSERT_EQUAL(MODVM_VIRTIO_ID_BLOCK, VIRTIO_ID_BLOCK);
	CU_ASSERT_EQUAL(MODVM_VIRTIO_ID_CONSOLE, VIRTIO_ID_CONSOLE);
	CU_ASSERT_EQUAL(MODVM_VIRTIO_ID_RNG, VIRTIO_ID_RNG);
}

int main(void)
{
	static const struct test_case cases[] = {
		TEST(test_virtio_constants_match_linux),
	};
	return RUN_TESTS("sdk_names", cases);
}
