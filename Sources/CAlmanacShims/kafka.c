#include "almanac_shims.h"

rd_kafka_resp_err_t almanac_kafka_produce(rd_kafka_t *rk, const char *topic, int32_t partition,
                                          const void *key, size_t key_len,
                                          const void *value, size_t value_len,
                                          rd_kafka_headers_t *headers, void *opaque) {
    rd_kafka_vu_t vus[7];
    size_t n = 0;
    vus[n].vtype = RD_KAFKA_VTYPE_TOPIC; vus[n].u.cstr = topic; n++;
    vus[n].vtype = RD_KAFKA_VTYPE_PARTITION; vus[n].u.i32 = partition; n++;
    vus[n].vtype = RD_KAFKA_VTYPE_MSGFLAGS; vus[n].u.i = RD_KAFKA_MSG_F_COPY; n++;
    if (key != NULL) { vus[n].vtype = RD_KAFKA_VTYPE_KEY; vus[n].u.mem.ptr = (void *)key; vus[n].u.mem.size = key_len; n++; }
    vus[n].vtype = RD_KAFKA_VTYPE_VALUE; vus[n].u.mem.ptr = (void *)value; vus[n].u.mem.size = value_len; n++;
    if (headers != NULL) { vus[n].vtype = RD_KAFKA_VTYPE_HEADERS; vus[n].u.headers = headers; n++; }
    vus[n].vtype = RD_KAFKA_VTYPE_OPAQUE; vus[n].u.ptr = opaque; n++;
    rd_kafka_error_t *error = rd_kafka_produceva(rk, vus, n);
    if (error == NULL) return RD_KAFKA_RESP_ERR_NO_ERROR;
    rd_kafka_resp_err_t code = rd_kafka_error_code(error);
    rd_kafka_error_destroy(error);
    return code;
}

void almanac_kafka_conf_set_dr_cb(rd_kafka_conf_t *conf, almanac_kafka_dr_cb cb) {
    rd_kafka_conf_set_dr_msg_cb(conf, cb);
}

void *almanac_kafka_message_private(const rd_kafka_message_t *msg) {
    return msg->_private;
}
