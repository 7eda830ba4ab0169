/* Board header for the host build of the firmware's protocol parser (tests/fuzz_harness/protocol_host.c). */
#ifndef TINYML_BOARD_H
#define TINYML_BOARD_H
#define TINYML_FRAME_TIMEOUT_MS 5u /* in harness ticks: one tick per poll of an empty input */
#endif
