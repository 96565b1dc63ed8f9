#ifndef ALMANAC_CLIBPQ_SHIM_H
#define ALMANAC_CLIBPQ_SHIM_H
#include <postgresql/libpq-fe.h>
#endif
