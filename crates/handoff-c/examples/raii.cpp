// A C++ RAII wrapper of handoff.h in a few lines, and the seed's second exercise with it:
// 1,000 output files open at once under a budget of 16 real descriptors, each written through
// the wrapper and through a pinned descriptor given to C's write(). Compiled and run by
// tests/c_api.rs (c++ -std=c++17).
//
//   c++ -std=c++17 -I crates/handoff-c/include raii.cpp -L target/release -lhandoff_c
#include "handoff.h"

#include <fcntl.h>
#include <cerrno>
#include <cstdio>
#include <string>
#include <system_error>
#include <utility>
#include <vector>
#ifdef _WIN32
#include <io.h>
#define write _write
#else
#include <unistd.h>
#endif

namespace handoff {

[[noreturn]] inline void fail(const char *what) {
    throw std::system_error(errno, std::generic_category(), what);
}

// Owns a pager; frees it (closing every file still open in it) on scope exit.
class Pager {
  public:
    explicit Pager(size_t budget = 0) : p_(handoff_pager_new(budget)) {
        if (!p_) fail("handoff_pager_new");
    }
    ~Pager() { handoff_pager_free(p_); }
    Pager(const Pager &) = delete;
    Pager &operator=(const Pager &) = delete;
    handoff_pager *get() const { return p_; }

  private:
    handoff_pager *p_;
};

// Owns a virtual descriptor; closes it once (movable, not copyable).
class File {
  public:
    File(Pager &pager, const std::string &path, int flags, int mode = 0644)
        : p_(pager.get()), vfd_(handoff_open(p_, path.c_str(), flags, mode)) {
        if (vfd_ < 0) fail(path.c_str());
    }
    File(File &&other) noexcept : p_(other.p_), vfd_(std::exchange(other.vfd_, -1)) {}
    File &operator=(File &&) = delete;
    ~File() {
        if (vfd_ >= 0) handoff_close(p_, vfd_);
    }
    void write_all(const std::string &s) {
        if (handoff_write(p_, vfd_, s.data(), s.size()) != (int64_t)s.size()) fail("handoff_write");
    }
    std::string read_at(int64_t offset, size_t len) const {
        std::string s(len, '\0');
        int64_t n = handoff_pread(p_, vfd_, &s[0], len, offset);
        if (n < 0) fail("handoff_pread");
        s.resize((size_t)n);
        return s;
    }
    handoff_pager *pager() const { return p_; }
    int vfd() const { return vfd_; }

  private:
    handoff_pager *p_;
    int vfd_;
};

// A real descriptor at the file's cursor for this scope; the cursor takes its offset back.
class Pin {
  public:
    explicit Pin(File &file) : file_(file), fd_(handoff_pin(file.pager(), file.vfd())) {
        if (fd_ < 0) fail("handoff_pin");
    }
    ~Pin() { handoff_unpin(file_.pager(), file_.vfd()); }
    Pin(const Pin &) = delete;
    Pin &operator=(const Pin &) = delete;
    int fd() const { return fd_; }

  private:
    File &file_;
    int fd_;
};

}  // namespace handoff

int main(int argc, char **argv) try {
    std::string dir = argc > 1 ? argv[1] : ".";
    handoff::Pager pager(16);
    std::vector<handoff::File> files;
    for (int i = 0; i < 1000; i++)
        files.emplace_back(pager, dir + "/part-" + std::to_string(i), O_RDWR | O_CREAT | O_TRUNC);
    for (int i = 0; i < 1000; i++) {
        files[i].write_all("from C++ ");
        handoff::Pin pin(files[i]);  // e.g. for a C library that wants an int
        std::string line = "and from C, file " + std::to_string(i) + "\n";
        if (write(pin.fd(), line.data(), (unsigned)line.size()) != (int)line.size()) handoff::fail("write");
    }
    std::string want = "from C++ and from C, file 999\n";
    if (files[999].read_at(0, 100) != want) throw std::runtime_error("wrong content");
    handoff_stats stats;
    handoff_pager_stats(pager.get(), &stats);
    std::printf("1000 files, peak %llu real descriptors\nok\n", (unsigned long long)stats.peak_resident);
    return stats.peak_resident <= 16 ? 0 : 1;
} catch (const std::exception &e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
}
