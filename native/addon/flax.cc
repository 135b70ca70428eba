// flax native addon: the few syscalls Node does not expose (setns, namespace
// pinning, flock). Every function returns or throws errno-style errors
// (Error with .code, .errno, .syscall); policy lives in TypeScript.
#include <napi.h>
#include <v8.h>

#include <errno.h>
#include <malloc.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <string>

#include "cniserver.h"
#include "nftables.h"

#ifndef NS_GET_NSTYPE
#define NS_GET_NSTYPE 0xb703
#endif

namespace {

Napi::Value ThrowErrno(Napi::Env env, int err, const char* syscall, const std::string& path = "") {
  std::string msg = std::string(syscall) + ": " + strerror(err);
  if (!path.empty()) msg += " '" + path + "'";
  Napi::Error e = Napi::Error::New(env, msg);
  const char* name = strerrorname_np(err);
  e.Set("code", Napi::String::New(env, name ? name : "EUNKNOWN"));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, syscall));
  if (!path.empty()) e.Set("path", Napi::String::New(env, path));
  e.ThrowAsJavaScriptException();
  return env.Undefined();
}

bool ArgInt(const Napi::CallbackInfo& info, size_t i, int* out) {
  if (info.Length() <= i || !info[i].IsNumber()) {
    Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + " must be a number")
        .ThrowAsJavaScriptException();
    return false;
  }
  *out = info[i].As<Napi::Number>().Int32Value();
  return true;
}

bool ArgStr(const Napi::CallbackInfo& info, size_t i, std::string* out) {
  if (info.Length() <= i || !info[i].IsString()) {
    Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + " must be a string")
        .ThrowAsJavaScriptException();
    return false;
  }
  *out = info[i].As<Napi::String>().Utf8Value();
  return true;
}

// setns(fd, nstype): moves ONLY the calling thread (the JS main thread).
Napi::Value SetNs(const Napi::CallbackInfo& info) {
  int fd, type;
  if (!ArgInt(info, 0, &fd) || !ArgInt(info, 1, &type)) return info.Env().Undefined();
  if (setns(fd, type) != 0) return ThrowErrno(info.Env(), errno, "setns");
  return info.Env().Undefined();
}

// linkDelAsync(netnsFd, ifindex): RTM_DELLINK of the link in that netns, sent from a thread of libuv's pool;
// resolves with the kernel's errno (0: deleted). The kernel unlists the link early in the request, then
// waits (RCU grace periods, references: ~10 ms) before it answers: the caller need not wait on its own
// thread (issue 24: the bridge's DEL). The socket is made in the netns here, on the calling thread.
// The promise is settled through plain napi calls whose failure is ignored: a worker thread terminated (the CNI
// server's close, a recycled worker) while the delete is in flight completes it during its environment's teardown,
// where a failed napi call that throws (node-addon-api's Deferred) is a fatal error of the whole process.
class LinkDelWorker : public Napi::AsyncWorker {
 public:
  LinkDelWorker(Napi::Env env, int sock, int index) : Napi::AsyncWorker(env), sock_(sock), index_(index) {
    if (napi_create_promise(env, &deferred_, &promise_) != napi_ok) deferred_ = nullptr;
  }
  ~LinkDelWorker() override { close(sock_); }
  napi_value Promise() const { return promise_; }
  void Execute() override {
    struct {
      struct nlmsghdr nh;
      struct ifinfomsg ifi;
    } req = {};
    req.nh.nlmsg_len = sizeof(req);
    req.nh.nlmsg_type = RTM_DELLINK;
    req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
    req.nh.nlmsg_seq = 1;
    req.ifi.ifi_family = AF_UNSPEC;
    req.ifi.ifi_index = index_;
    struct sockaddr_nl kernel = {};
    kernel.nl_family = AF_NETLINK;
    if (sendto(sock_, &req, sizeof(req), 0, reinterpret_cast<sockaddr*>(&kernel), sizeof(kernel)) < 0) {
      err_ = errno;
      return;
    }
    char buf[8192];
    for (;;) {
      ssize_t n = recv(sock_, buf, sizeof(buf), 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        err_ = errno;
        return;
      }
      for (struct nlmsghdr* h = reinterpret_cast<struct nlmsghdr*>(buf); NLMSG_OK(h, static_cast<size_t>(n)); h = NLMSG_NEXT(h, n)) {
        if (h->nlmsg_type == NLMSG_ERROR && h->nlmsg_seq == 1) {
          err_ = -reinterpret_cast<struct nlmsgerr*>(NLMSG_DATA(h))->error;
          return;
        }
      }
    }
  }
  // the errno (0: deleted); Execute sets no error, so OnError is never called
  void OnOK() override {
    napi_value v;
    if (deferred_ && napi_create_int32(Env(), err_, &v) == napi_ok) napi_resolve_deferred(Env(), deferred_, v);
  }
  void OnError(const Napi::Error&) override {}

 private:
  int sock_, index_, err_ = 0;
  napi_deferred deferred_ = nullptr;
  napi_value promise_ = nullptr;
};

Napi::Value LinkDelAsync(const Napi::CallbackInfo& info) {
  int nsFd, index;
  if (!ArgInt(info, 0, &nsFd) || !ArgInt(info, 1, &index)) return info.Env().Undefined();
  int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (self < 0) return ThrowErrno(info.Env(), errno, "open /proc/thread-self/ns/net");
  if (setns(nsFd, CLONE_NEWNET) != 0) {
    int e = errno;
    close(self);
    return ThrowErrno(info.Env(), e, "setns");
  }
  int sock = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  int e = errno;
  if (setns(self, CLONE_NEWNET) != 0) abort();  // this thread must never stay in the pod's netns
  close(self);
  if (sock < 0) return ThrowErrno(info.Env(), e, "socket(AF_NETLINK)");
  auto* w = new LinkDelWorker(info.Env(), sock, index);
  napi_value p = w->Promise();
  if (!p) {
    delete w;
    return ThrowErrno(info.Env(), ENOMEM, "napi_create_promise");
  }
  w->Queue();
  return Napi::Value(info.Env(), p);
}

// nsType(fd): CLONE_NEW* value of the namespace behind fd (ioctl NS_GET_NSTYPE).
Napi::Value NsType(const Napi::CallbackInfo& info) {
  int fd;
  if (!ArgInt(info, 0, &fd)) return info.Env().Undefined();
  int r = ioctl(fd, NS_GET_NSTYPE);
  if (r < 0) return ThrowErrno(info.Env(), errno, "ioctl(NS_GET_NSTYPE)");
  return Napi::Number::New(info.Env(), r);
}

// fsMagic(fd): statfs f_type of the filesystem holding fd.
Napi::Value FsMagic(const Napi::CallbackInfo& info) {
  int fd;
  if (!ArgInt(info, 0, &fd)) return info.Env().Undefined();
  struct statfs st;
  if (fstatfs(fd, &st) != 0) return ThrowErrno(info.Env(), errno, "fstatfs");
  return Napi::Number::New(info.Env(), static_cast<double>(static_cast<uint32_t>(st.f_type)));
}

// Like iproute2's netns_add: make dir a shared mount point so pins propagate
// to other mount namespaces (and can be unmounted from them).
int EnsureSharedDir(const std::string& dir, const char** failed) {
  std::string acc;
  size_t pos = 0;
  while (pos != std::string::npos) {  // mkdir -p
    pos = dir.find('/', pos + 1);
    acc = dir.substr(0, pos);
    if (!acc.empty() && mkdir(acc.c_str(), 0755) != 0 && errno != EEXIST) {
      *failed = "mkdir";
      return errno;
    }
  }
  bool bound = false;
  while (mount("", dir.c_str(), "none", MS_SHARED | MS_REC, nullptr) != 0) {
    if (errno != EINVAL || bound) {
      *failed = "mount(MS_SHARED)";
      return errno;
    }
    if (mount(dir.c_str(), dir.c_str(), "none", MS_BIND | MS_REC, nullptr) != 0) {
      *failed = "mount(MS_BIND)";
      return errno;
    }
    bound = true;
  }
  return 0;
}

struct PinJob {
  std::string path;
  int err = 0;
  const char* failed = "";
};

// Runs in a fresh pthread: unshare only this thread into a new netns and pin
// it. The thread then exits, so no JS or libuv thread ever lives there.
void* PinThread(void* arg) {
  PinJob* job = static_cast<PinJob*>(arg);
  if (unshare(CLONE_NEWNET) != 0) {
    job->err = errno;
    job->failed = "unshare(CLONE_NEWNET)";
    return nullptr;
  }
  std::string src = "/proc/self/task/" + std::to_string(static_cast<long>(syscall(SYS_gettid))) + "/ns/net";
  if (mount(src.c_str(), job->path.c_str(), "none", MS_BIND, nullptr) != 0) {
    job->err = errno;
    job->failed = "mount(MS_BIND netns)";
  }
  return nullptr;
}

// createNetns(pinPath): like `ip netns add`. Fails with EEXIST if the pin exists.
Napi::Value CreateNetns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path;
  if (!ArgStr(info, 0, &path)) return env.Undefined();
  size_t slash = path.rfind('/');
  if (path.empty() || path[0] != '/' || slash == std::string::npos || slash + 1 >= path.size())
    return ThrowErrno(env, EINVAL, "createNetns", path);
  std::string dir = slash == 0 ? "/" : path.substr(0, slash);
  const char* failed = "";
  int err = EnsureSharedDir(dir, &failed);
  if (err) return ThrowErrno(env, err, failed, dir);

  int fd = open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
  if (fd < 0) return ThrowErrno(env, errno, "open", path);
  close(fd);

  PinJob job;
  job.path = path;
  pthread_t th;
  err = pthread_create(&th, nullptr, PinThread, &job);
  if (err == 0) err = pthread_join(th, nullptr);
  if (err == 0 && job.err != 0) {
    err = job.err;
    failed = job.failed;
  } else if (err != 0) {
    failed = "pthread_create";
  }
  if (err) {
    umount2(path.c_str(), MNT_DETACH);
    unlink(path.c_str());
    return ThrowErrno(env, err, failed, path);
  }
  return env.Undefined();
}

// removeNetns(pinPath): umount2(MNT_DETACH) + unlink; a missing pin is fine.
Napi::Value RemoveNetns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path;
  if (!ArgStr(info, 0, &path)) return env.Undefined();
  if (umount2(path.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT)
    return ThrowErrno(env, errno, "umount2", path);
  if (unlink(path.c_str()) != 0 && errno != ENOENT) return ThrowErrno(env, errno, "unlink", path);
  return env.Undefined();
}

// makeSharedDir(dir): mkdir -p and make dir a shared mount point (a bind
// mount of itself if needed), as createNetns does for its pin directory.
Napi::Value MakeSharedDir(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string dir;
  if (!ArgStr(info, 0, &dir)) return env.Undefined();
  if (dir.empty() || dir[0] != '/') return ThrowErrno(env, EINVAL, "makeSharedDir", dir);
  const char* failed = "";
  int err = EnsureSharedDir(dir, &failed);
  if (err) return ThrowErrno(env, err, failed, dir);
  return env.Undefined();
}

// pinNamespace(src, dst): bind-mounts a namespace file (/proc/<pid>/ns/<x>)
// onto a new file dst (EEXIST if present); dst is removed on failure.
Napi::Value PinNamespace(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string src, dst;
  if (!ArgStr(info, 0, &src) || !ArgStr(info, 1, &dst)) return env.Undefined();
  int fd = open(dst.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
  if (fd < 0) return ThrowErrno(env, errno, "open", dst);
  close(fd);
  if (mount(src.c_str(), dst.c_str(), "none", MS_BIND, nullptr) != 0) {
    int err = errno;
    unlink(dst.c_str());
    return ThrowErrno(env, err, "mount(MS_BIND)", src);
  }
  return env.Undefined();
}

// flock(fd, op): blocking unless LOCK_NB is in op (then EWOULDBLOCK).
Napi::Value Flock(const Napi::CallbackInfo& info) {
  int fd, op;
  if (!ArgInt(info, 0, &fd) || !ArgInt(info, 1, &op)) return info.Env().Undefined();
  int r;
  do {
    r = flock(fd, op);
  } while (r != 0 && errno == EINTR);
  if (r != 0) return ThrowErrno(info.Env(), errno, "flock");
  return info.Env().Undefined();
}

// gettid(): the calling thread's id (for /proc/self/task/<tid>/ns/net).
Napi::Value GetTid(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(syscall(SYS_gettid)));
}

// malloc_trim(0): gives the free memory of every malloc arena back to the
// kernel. glibc returns an arena's free pages only from its top; a worker
// thread's arena, once the thread has gone, keeps what it freed (issue 26).
Napi::Value MallocTrim(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), malloc_trim(0) != 0);
}

// mallopt(M_ARENA_MAX, n): at most n malloc arenas from now on. glibc gives
// each new thread an arena of its own (up to 8 per core), each holding on to
// what its thread freed: the CNI server's worker threads (issue 24).
Napi::Value MallocArenaMax(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), mallopt(M_ARENA_MAX, info[0].As<Napi::Number>().Int32Value()) == 1);
}

// V8's LowMemoryNotification on the calling thread's isolate: full GCs that
// also shrink the young generation and give free heap pages back. The one
// V8 (not N-API) call here: Node has no JS API for it, and a worker that
// served a burst keeps its grown heap until the next allocation pressure.
// Built against the Node that runs it (the addon ships beside its Node).
Napi::Value LowMemoryNotification(const Napi::CallbackInfo& info) {
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  if (isolate) isolate->LowMemoryNotification();
  return info.Env().Undefined();
}


// Drops the page-table entries of the read-only file mappings that hold no
// private (copy-on-write) page: the executable's text and read-only data,
// and in a SEA the blob (its V8 startup snapshot, read once to deserialize
// it). madvise(MADV_DONTNEED) on such a mapping discards nothing — every
// page is the file's — and a page used again is mapped again from the page
// cache (a minor fault). What a daemon touched only while it started stops
// counting in its RSS (issue 24). Returns the bytes unmapped.
Napi::Value ReleaseFilePages(const Napi::CallbackInfo& info) {
  FILE* f = fopen("/proc/self/smaps", "re");
  if (!f) return Napi::Number::New(info.Env(), 0);
  char line[512];
  unsigned long start = 0, end = 0, rss = 0;
  bool candidate = false, sawRss = false;
  double released = 0;
  auto flush = [&](bool anonZero) {
    if (candidate && sawRss && anonZero && rss > 0 &&
        madvise(reinterpret_cast<void*>(start), end - start, MADV_DONTNEED) == 0)
      released += static_cast<double>(rss) * 1024;
    candidate = false;
  };
  while (fgets(line, sizeof line, f)) {
    unsigned long a, b, off;
    char perms[8], dev[16], path[256];
    unsigned long inode;
    path[0] = 0;
    int n = sscanf(line, "%lx-%lx %7s %lx %15s %lu %255s", &a, &b, perms, &off, dev, &inode, path);
    if (n >= 6 && strchr(line, '-') < strchr(line, ' ')) {
      // a new mapping: private, not writable, backed by a file
      candidate = n == 7 && inode != 0 && path[0] == '/' && perms[1] == '-' && perms[3] == 'p';
      start = a; end = b; sawRss = false; rss = 0;
      continue;
    }
    if (sscanf(line, "Rss: %lu kB", &rss) == 1) { sawRss = true; continue; }
    unsigned long anon;
    if (sscanf(line, "Anonymous: %lu kB", &anon) == 1) flush(anon == 0);
  }
  fclose(f);
  return Napi::Number::New(info.Env(), released);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("setns", Napi::Function::New(env, SetNs, "setns"));
  exports.Set("nsType", Napi::Function::New(env, NsType, "nsType"));
  exports.Set("linkDelAsync", Napi::Function::New(env, LinkDelAsync, "linkDelAsync"));
  exports.Set("fsMagic", Napi::Function::New(env, FsMagic, "fsMagic"));
  exports.Set("createNetns", Napi::Function::New(env, CreateNetns, "createNetns"));
  exports.Set("removeNetns", Napi::Function::New(env, RemoveNetns, "removeNetns"));
  exports.Set("flock", Napi::Function::New(env, Flock, "flock"));
  exports.Set("makeSharedDir", Napi::Function::New(env, MakeSharedDir, "makeSharedDir"));
  exports.Set("pinNamespace", Napi::Function::New(env, PinNamespace, "pinNamespace"));
  exports.Set("gettid", Napi::Function::New(env, GetTid, "gettid"));
  exports.Set("mallocTrim", Napi::Function::New(env, MallocTrim, "mallocTrim"));
  exports.Set("mallocArenaMax", Napi::Function::New(env, MallocArenaMax, "mallocArenaMax"));
  exports.Set("releaseFilePages", Napi::Function::New(env, ReleaseFilePages, "releaseFilePages"));
  exports.Set("lowMemoryNotification", Napi::Function::New(env, LowMemoryNotification, "lowMemoryNotification"));
  InitCniServer(env, exports);
  InitNftables(env, exports);
  Napi::Object c = Napi::Object::New(env);
  c.Set("CLONE_NEWNET", Napi::Number::New(env, CLONE_NEWNET));
  c.Set("CLONE_NEWNS", Napi::Number::New(env, CLONE_NEWNS));
  c.Set("CLONE_NEWUTS", Napi::Number::New(env, CLONE_NEWUTS));
  c.Set("CLONE_NEWIPC", Napi::Number::New(env, CLONE_NEWIPC));
  c.Set("CLONE_NEWPID", Napi::Number::New(env, CLONE_NEWPID));
  c.Set("CLONE_NEWUSER", Napi::Number::New(env, CLONE_NEWUSER));
  c.Set("LOCK_SH", Napi::Number::New(env, LOCK_SH));
  c.Set("LOCK_EX", Napi::Number::New(env, LOCK_EX));
  c.Set("LOCK_UN", Napi::Number::New(env, LOCK_UN));
  c.Set("LOCK_NB", Napi::Number::New(env, LOCK_NB));
  c.Set("NSFS_MAGIC", Napi::Number::New(env, 0x6e736673));
  c.Set("PROC_SUPER_MAGIC", Napi::Number::New(env, 0x9fa0));
  exports.Set("constants", c);
  return exports;
}

}  // namespace

NODE_API_MODULE(flax, Init)
