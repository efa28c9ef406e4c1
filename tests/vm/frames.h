/* Patterned test frames shared by the VM probes (negative_probe.c, probe.c).
 *
 * Each frame is an Ethernet frame of a length that varies with its sequence number, with a
 * local-experimental EtherType, the sequence number, and a payload whose every byte is a
 * function of (sequence, offset). The receiver recomputes the whole frame and compares every
 * byte, so a NIC that read the wrong memory (wrong IOVA) or dropped a frame is caught. */
#ifndef IOVAM_VM_FRAMES_H
#define IOVAM_VM_FRAMES_H

#include <stdint.h>
#include <string.h>

#include <rte_ether.h>

#define FRAME_ETHERTYPE 0x88B5 /* IEEE local experimental: nothing else in the guest uses it */
#define FRAME_MIN_LEN   60u    /* shortest frame without FCS: no NIC padding to account for */
#define FRAME_MAX_LEN   1514u
#define FRAME_HDR_LEN   (RTE_ETHER_HDR_LEN + 4u) /* Ethernet header + 32-bit sequence number */

/* Frame length for a sequence number: spreads over [FRAME_MIN_LEN, FRAME_MAX_LEN] so short,
 * long and odd lengths are all exercised. */
static inline uint32_t frame_len(uint32_t seq)
{
	return FRAME_MIN_LEN + (seq * 7919u) % (FRAME_MAX_LEN - FRAME_MIN_LEN + 1u);
}

/* Payload byte at offset off of frame seq: differs between neighbouring frames and offsets. */
static inline uint8_t frame_byte(uint32_t seq, uint32_t off)
{
	uint32_t x = seq * 2654435761u ^ off * 40503u;
	return (uint8_t)(x ^ (x >> 13) ^ (x >> 24));
}

/* Writes frame seq (frame_len(seq) bytes) into buf. */
static inline void frame_fill(uint8_t *buf, uint32_t seq, const struct rte_ether_addr *src,
                              const struct rte_ether_addr *dst)
{
	struct rte_ether_hdr *eh = (struct rte_ether_hdr *)buf;
	uint32_t len = frame_len(seq), off;

	rte_ether_addr_copy(dst, &eh->dst_addr);
	rte_ether_addr_copy(src, &eh->src_addr);
	eh->ether_type = rte_cpu_to_be_16(FRAME_ETHERTYPE);
	memcpy(buf + RTE_ETHER_HDR_LEN, &seq, sizeof(seq));
	for (off = FRAME_HDR_LEN; off < len; off++) buf[off] = frame_byte(seq, off);
}

/* Checks a received frame byte by byte. Returns the sequence number, or -1 if the frame is not
 * one of ours (wrong EtherType / addresses), or -2 if it is ours but damaged. */
static inline int64_t frame_check(const uint8_t *buf, uint32_t len, uint32_t max_seq,
                                  const struct rte_ether_addr *src,
                                  const struct rte_ether_addr *dst)
{
	const struct rte_ether_hdr *eh = (const struct rte_ether_hdr *)buf;
	uint32_t seq, off;

	if (len < FRAME_HDR_LEN || eh->ether_type != rte_cpu_to_be_16(FRAME_ETHERTYPE)) return -1;
	if (!rte_is_same_ether_addr(&eh->src_addr, src) ||
	    !rte_is_same_ether_addr(&eh->dst_addr, dst))
		return -1;
	memcpy(&seq, buf + RTE_ETHER_HDR_LEN, sizeof(seq));
	if (seq >= max_seq || len != frame_len(seq)) return -2;
	for (off = FRAME_HDR_LEN; off < len; off++)
		if (buf[off] != frame_byte(seq, off)) return -2;
	return seq;
}

#endif
