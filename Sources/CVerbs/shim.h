#ifndef DMANOEL_CVERBS_SHIM_H
#define DMANOEL_CVERBS_SHIM_H
#include <sys/types.h>
#include <sys/socket.h>
#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>
#endif
