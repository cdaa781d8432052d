/*
 * mfa.c - (being written) see auth_internal.h.
 */
#include "auth_internal.h"
