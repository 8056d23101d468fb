#ifndef MESHGATE_CCURL_H
#define MESHGATE_CCURL_H
#include <curl/curl.h>
#endif
