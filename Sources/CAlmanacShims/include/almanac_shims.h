#ifndef ALMANAC_SHIMS_H
#define ALMANAC_SHIMS_H
#include <stddef.h>
#include <stdint.h>
#include <librdkafka/rdkafka.h>

/// Produces one message through rd_kafka_produceva (the non-variadic form of producev).
/// The payload and key are copied; on success the headers are owned by librdkafka.
/// `opaque` comes back as the message's `_private` in the delivery-report callback.
rd_kafka_resp_err_t almanac_kafka_produce(rd_kafka_t *rk, const char *topic, int32_t partition,
                                          const void *key, size_t key_len,
                                          const void *value, size_t value_len,
                                          rd_kafka_headers_t *headers, void *opaque);

/// The delivery-report callback type the Swift side installs.
typedef void (*almanac_kafka_dr_cb)(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque);

/// Installs a delivery-report callback on a configuration object.
void almanac_kafka_conf_set_dr_cb(rd_kafka_conf_t *conf, almanac_kafka_dr_cb cb);

/// Reads the per-message opaque (`_private`) of a delivered message.
void *almanac_kafka_message_private(const rd_kafka_message_t *msg);

#endif
