// The event loop under a curl thread: libcurl's socket interface (curl_multi_socket_action)
// over epoll. curl says through its socket callback which sockets to watch for what, and through
// its timer callback when it next needs a call for timeouts; a wake-up eventfd lets callers on
// other threads interrupt the wait. Each wake-up then hands curl only the sockets with activity
// and the transfers whose timers expired, where curl_multi_perform would run every transfer (and
// poll each one's socket) on every wake-up.
//
// A connection going idle between two transfers is not taken out of the epoll set. curl says
// CURL_POLL_REMOVE when a transfer ends and the same mask again when the next one starts on the
// connection; taking the socket out and putting it back cost two epoll_ctl calls a request. So
// the loop keeps, per descriptor, the mask epoll has and whether curl watches it: a socket curl
// stops watching stays registered, one curl watches again under the same mask costs nothing, and
// an event on a socket curl does not watch (an idle connection closed by the server, say) takes
// it out then. curl closes its sockets through CURLOPT_CLOSESOCKETFUNCTION
// (mesh_curl_events_attach), which forgets the descriptor's state and takes it out of the set
// first, so a descriptor number reused by a new socket never inherits a stale registration.

#include "CCurlShims.h"

#include <CMeshSupport.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

/// What the loop knows of one descriptor: the events epoll has it registered for (0: not in the
/// set) and whether curl watches it now.
struct fd_state {
    uint32_t registered;
    uint8_t watched;
};

struct mesh_curl_events {
    CURLM *multi;
    int epoll;
    int wake;
    /// When curl wants its timeout call (CLOCK_MONOTONIC nanoseconds); -1: no timer.
    int64_t deadline;
    /// Bumped by every timer callback, to tell whether a timeout call set a new timer.
    uint64_t timer_calls;
    /// Indexed by descriptor; grown on demand.
    struct fd_state *fds;
    int fd_capacity;
};

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/// The state of `fd`, the table grown to hold it; NULL when memory is short.
static struct fd_state *state_of(mesh_curl_events *ev, int fd) {
    if (fd < 0) return NULL;
    if (fd >= ev->fd_capacity) {
        int capacity = ev->fd_capacity ? ev->fd_capacity : 64;
        while (capacity <= fd) capacity *= 2;
        struct fd_state *grown = realloc(ev->fds, (size_t)capacity * sizeof *grown);
        if (!grown) return NULL;
        memset(grown + ev->fd_capacity, 0, (size_t)(capacity - ev->fd_capacity) * sizeof *grown);
        ev->fds = grown;
        ev->fd_capacity = capacity;
    }
    return &ev->fds[fd];
}

static void unregister(mesh_curl_events *ev, int fd) {
    struct fd_state *st = fd < ev->fd_capacity ? &ev->fds[fd] : NULL;
    // Fails harmlessly (EBADF, ENOENT) when the socket is already closed or was never added.
    if (!st || st->registered) epoll_ctl(ev->epoll, EPOLL_CTL_DEL, fd, NULL);
    if (st) { st->registered = 0; st->watched = 0; }
}

static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp) {
    (void)easy;
    (void)socketp;
    mesh_curl_events *ev = userp;
    struct fd_state *st = state_of(ev, s);
    if (what == CURL_POLL_REMOVE) {
        // Stays in the set until an event comes for it or curl closes it (see above).
        if (st) st->watched = 0;
        else epoll_ctl(ev->epoll, EPOLL_CTL_DEL, s, NULL);
        return 0;
    }
    uint32_t want = ((what & CURL_POLL_IN) ? EPOLLIN : 0) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0);
    if (st && st->registered == want) {
        st->watched = 1;
        return 0;
    }
    struct epoll_event e = {0};
    e.events = want;
    e.data.fd = s;
    int op = st && st->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(ev->epoll, op, s, &e) != 0) {
        if (errno == EEXIST) epoll_ctl(ev->epoll, EPOLL_CTL_MOD, s, &e);
        else if (errno == ENOENT) epoll_ctl(ev->epoll, EPOLL_CTL_ADD, s, &e);
    }
    if (st) { st->registered = want; st->watched = 1; }
    return 0;
}

static int on_close(void *clientp, curl_socket_t s) {
    unregister(clientp, s);
    return close(s);
}

CURLcode mesh_curl_events_attach(mesh_curl_events *ev, CURL *easy) {
    CURLcode rc = curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, on_close);
    if (rc != CURLE_OK) return rc;
    return curl_easy_setopt(easy, CURLOPT_CLOSESOCKETDATA, (void *)ev);
}

static int on_timer(CURLM *multi, long timeout_ms, void *userp) {
    (void)multi;
    mesh_curl_events *ev = userp;
    ev->timer_calls++;
    ev->deadline = timeout_ms < 0 ? -1 : now_ns() + (int64_t)timeout_ms * 1000000;
    return 0;
}

mesh_curl_events *mesh_curl_events_create(CURLM *multi) {
    mesh_curl_events *ev = calloc(1, sizeof *ev);
    if (!ev) return NULL;
    ev->multi = multi;
    ev->deadline = -1;
    ev->epoll = epoll_create1(EPOLL_CLOEXEC);
    ev->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (ev->epoll < 0 || ev->wake < 0) {
        if (ev->epoll >= 0) close(ev->epoll);
        if (ev->wake >= 0) close(ev->wake);
        free(ev);
        return NULL;
    }
    struct epoll_event e = {0};
    e.events = EPOLLIN;
    e.data.fd = ev->wake;
    epoll_ctl(ev->epoll, EPOLL_CTL_ADD, ev->wake, &e);
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, ev);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(multi, CURLMOPT_TIMERDATA, ev);
    return ev;
}

void mesh_curl_events_destroy(mesh_curl_events *ev) {
    if (!ev) return;
    close(ev->epoll);
    close(ev->wake);
    free(ev->fds);
    free(ev);
}

void mesh_curl_events_wake(mesh_curl_events *ev) {
    uint64_t one = 1;
    // EAGAIN only when the counter is about to overflow: a wake-up is pending anyway.
    while (write(ev->wake, &one, sizeof one) < 0 && errno == EINTR) {}
}

int mesh_curl_events_run(mesh_curl_events *ev, int max_wait_ms) {
    int timeout = max_wait_ms;
    if (ev->deadline >= 0 && timeout != 0) {
        int64_t left = ev->deadline - now_ns();
        int64_t ms = left <= 0 ? 0 : (left + 999999) / 1000000;
        if (timeout < 0 || ms < timeout) timeout = (int)ms;
    }
    struct epoll_event events[64];
    int n = epoll_wait(ev->epoll, events, 64, timeout);
    int woken = 0, running = 0;
    for (int i = 0; i < n; i++) {
        int fd = events[i].data.fd;
        if (fd == ev->wake) {
            uint64_t count;
            while (read(ev->wake, &count, sizeof count) < 0 && errno == EINTR) {}
            woken = 1;
            continue;
        }
        if (fd >= 0 && fd < ev->fd_capacity && !ev->fds[fd].watched) {
            // An idle connection curl does not watch: out of the set until curl wants it again.
            // curl finds out what happened (data, or the server closing) when it next uses it.
            unregister(ev, fd);
            continue;
        }
        uint32_t e = events[i].events;
        int flags = 0;
        // A receiver that leaves Nagle on and writes its answer in two parts (headers, then body, as
        // Python's http.server does) holds the second part until the first is acknowledged.
        if (e & EPOLLIN) mesh_acknowledge_now(fd);
        if (e & (EPOLLIN | EPOLLHUP | EPOLLRDHUP)) flags |= CURL_CSELECT_IN;
        if (e & EPOLLOUT) flags |= CURL_CSELECT_OUT;
        if (e & EPOLLERR) flags |= CURL_CSELECT_ERR;
        curl_multi_socket_action(ev->multi, fd, flags, &running);
    }
    if (ev->deadline >= 0 && ev->deadline <= now_ns()) {
        uint64_t calls = ev->timer_calls;
        curl_multi_socket_action(ev->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        // curl reports a timer only when its earliest expiry changes. If nothing had expired
        // yet (curl rounds the delay it reports down to a millisecond), it said nothing: look
        // again a millisecond later rather than spin or lose the timer.
        if (ev->timer_calls == calls && ev->deadline >= 0 && ev->deadline <= now_ns()) ev->deadline = now_ns() + 1000000;
    }
    return woken;
}
