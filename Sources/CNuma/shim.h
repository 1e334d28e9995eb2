#ifndef DMANOEL_CNUMA_SHIM_H
#define DMANOEL_CNUMA_SHIM_H
#include <numa.h>
#endif
