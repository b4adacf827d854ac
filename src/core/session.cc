#include "core/session.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <cstring>
#include <new>

#include "base/units.h"

namespace c10m::core {

namespace {

using proto::ErrorCode;
using proto::FrameHeader;
using proto::FrameType;
using proto::kHeaderSize;

/// With an unbounded write queue a FETCH is still produced in batches of this many bytes.
constexpr size_t kUnboundedFetchBatch = 256 * 1024;
/// Write-timeout / service marks per block; when full, the last mark absorbs new bytes.
constexpr uint16_t kMarksPerBlock = 32;

constexpr uint8_t kGoawayFrame[kHeaderSize] = {0xFE, 0x00, 0x00};

/// The header of a FETCH DATA frame of every length (3 bytes at 3 * length): immutable, so
/// that a FETCH queued by reference needs no per-session bytes at all.
constexpr auto kDataHeaders = [] {
  std::array<uint8_t, kHeaderSize*(proto::kMaxPayload + 1)> t{};
  for (size_t k = 0; k <= proto::kMaxPayload; ++k)
    proto::write_header(&t[kHeaderSize * k], FrameType::kFetch, static_cast<uint16_t>(k));
  return t;
}();

Nanos add_sat(Nanos a, Nanos b) { return a > kNever - b ? kNever : a + b; }

uint8_t type_byte(FrameType t) { return static_cast<uint8_t>(t); }

}  // namespace

/// A batch of output bytes queued at the same time: the bytes up to `end` (an offset in
/// the block's data) since the previous mark. `requests` requests are answered by frames
/// ending inside it; they were received in full at `rx` (the earliest of them).
struct Mark {
  uint32_t end;
  uint32_t requests;
  Nanos queued;
  Nanos rx;
};

/// An output run of immutable memory (content or a static table) queued by reference.
struct Ref {
  const uint8_t* p;
  uint32_t len;
  uint32_t file;  // 1: a FETCH body from the file source, for gather_output(files=true)
};

/// Header of a pooled block; the data follows it. Data bytes [begin, end) are live.
/// An output block holds either bytes or (refs = true) Ref records [ref_head, ref_count),
/// the first ref_off bytes of the head record already sent; `begin`/`end` then count the
/// logical bytes those records stand for (sent / queued).
/// For output, marks[mark_head, mark_count) cover the unsent bytes, the last one always
/// reaches `end` (so the oldest unsent byte's mark is always in the head block).
/// For input, `rx` is when bytes were last appended.
struct Session::Block {
  Block* next = nullptr;
  uint32_t begin = 0;
  uint32_t end = 0;
  uint16_t mark_head = 0;
  uint16_t mark_count = 0;
  bool small = false;  // from env.small_pool (short input frames, reference records)
  bool refs = false;   // output: Ref records instead of bytes
  uint32_t ref_head = 0;
  uint32_t ref_count = 0;
  uint32_t ref_off = 0;
  Nanos rx = 0;
  Mark marks[kMarksPerBlock];

  uint8_t* data() { return reinterpret_cast<uint8_t*>(this) + sizeof(Block); }
  const uint8_t* data() const { return reinterpret_cast<const uint8_t*>(this) + sizeof(Block); }
  Ref* ref_data() { return reinterpret_cast<Ref*>(data()); }
  const Ref* ref_data() const { return reinterpret_cast<const Ref*>(data()); }
  size_t size() const { return end - begin; }
};

// ---------------------------------------------------------------------------------------
// construction

size_t pressure_queue(size_t write_queue) {
  if (write_queue == 0) return 32 * 1024;
  return std::max(write_queue / 8, std::min<size_t>(write_queue, 16 * 1024));
}

Session::Session(const SessionEnv& env, Nanos now) : env_(&env), last_rx_(now) {
  if (env.account != nullptr && env.account->pressure() >= Pressure::kShrink) {
    shrunk_ = true;
    if (env.counters != nullptr)
      env.counters->overload_actions[static_cast<size_t>(metrics::OverloadAction::kShrinkQueue)]
          .add();
  }
  assert(env.pool != nullptr);
  assert(env.pool->block_size() >= sizeof(Block) + proto::kMaxFrame + 1);
  assert(env.small_pool == nullptr ||
         (env.small_pool->block_size() > sizeof(Block) + sizeof(part_) &&
          env.small_pool->block_size() <= env.pool->block_size()));
  static_assert(sizeof(Block) + kSessionSmallFrame <= kSessionSmallBlockSize);
  static_assert(sizeof(Block) % alignof(Ref) == 0);
}

Session::~Session() { drop_everything(/*keep_output_blocks=*/false); }

uint32_t Session::max_payload() const {
  // A frame length is a u16 whatever the configuration says.
  return std::min<uint32_t>(env_->limits.max_frame, proto::kMaxPayload);
}

size_t Session::block_capacity() const { return env_->pool->block_size() - sizeof(Block); }

size_t Session::small_capacity() const {
  return env_->small_pool == nullptr ? 0 : env_->small_pool->block_size() - sizeof(Block);
}

size_t Session::capacity(const Block* b) const {
  return b->small ? small_capacity() : block_capacity();
}

size_t Session::ref_capacity(const Block* b) const { return capacity(b) / sizeof(Ref); }

const ContentSource& Session::content() const {
  return env_->content != nullptr ? *env_->content : pattern_source();
}

Session::Block* Session::new_block(Chain& c, bool small) {
  // Default-initialized: the marks are written before they are read.
  BufferPool* pool = small ? env_->small_pool : env_->pool;
  if (env_->account != nullptr) env_->account->charge(pool->block_size());
  Block* b = new (pool->acquire()) Block;
  b->small = small;
  if (c.tail != nullptr) {
    c.tail->next = b;
  } else {
    c.head = b;
  }
  c.tail = b;
  return b;
}

void Session::free_block(Block* b) {
  BufferPool* pool = b->small ? env_->small_pool : env_->pool;
  b->~Block();
  pool->release(reinterpret_cast<uint8_t*>(b));
  if (env_->account != nullptr) env_->account->credit(pool->block_size());
}

void Session::release_front(Chain& c) {
  Block* b = c.head;
  c.head = b->next;
  if (c.head == nullptr) c.tail = nullptr;
  free_block(b);
}

void Session::release_chain(Chain& c) {
  while (!c.empty()) release_front(c);
}

void Session::drop_everything(bool keep_output_blocks) {
  if (out_bytes_ != 0 && env_->counters != nullptr)
    env_->counters->write_queue_bytes.sub(out_bytes_);
  out_bytes_ = 0;
  if (!keep_output_blocks) release_chain(out_);
  release_chain(in_);
  part_len_ = 0;
  discard_left_ = 0;
  fetch_chunk_ = 0;
}

// ---------------------------------------------------------------------------------------
// state queries

bool Session::can_examine() const {
  if (input_ == Input::kDead || cause_ != CloseCause::kNone || fetch_active()) return false;
  const size_t limit = queue_limit();
  return limit == 0 || out_bytes_ < limit;
}

size_t Session::queue_limit() const {
  const size_t wq = env_->limits.write_queue;
  if (!shrunk_ && (env_->account == nullptr || env_->account->pressure() < Pressure::kPause))
    return wq;
  const size_t pq = pressure_queue(wq);
  return wq == 0 ? pq : std::min(wq, pq);
}

void Session::note_pressure() {
  const size_t limit = queue_limit();
  const bool paused = limit != env_->limits.write_queue && out_bytes_ >= limit;
  if (paused && !paused_ && env_->counters != nullptr)
    env_->counters->overload_actions[static_cast<size_t>(metrics::OverloadAction::kPauseRead)]
        .add();
  paused_ = paused;
}

bool Session::wants_read() const { return input_ == Input::kOpen && can_examine(); }

bool Session::has_output() const { return out_bytes_ != 0; }

size_t Session::queued_bytes() const { return out_bytes_; }

bool Session::finished() const { return cause_ != CloseCause::kNone; }

CloseCause Session::close_cause() const { return cause_; }

bool Session::reset_on_close() const {
  return cause_ == CloseCause::kWriteTimeout || cause_ == CloseCause::kShed;
}

bool Session::request_in_flight() const {
  if (input_ == Input::kForced) return forced_in_flight_;
  if (input_ != Input::kOpen || finished()) return false;
  return discard_left_ != 0 || held_ends_mid_frame();
}

bool Session::held_ends_mid_frame() const {
  if (part_len_ != 0) return true;  // inline: always part of one frame
  if (in_.empty()) return false;
  // Walk the frame boundaries of the held bytes (they start at a boundary).
  size_t have = 0;
  uint8_t hdr[kHeaderSize];
  size_t skip = 0;
  for (const Block* b = in_.head; b != nullptr; b = b->next) {
    const uint8_t* p = b->data() + b->begin;
    size_t n = b->size();
    while (n != 0) {
      if (skip != 0) {
        const size_t k = std::min(skip, n);
        skip -= k;
        p += k;
        n -= k;
        continue;
      }
      hdr[have++] = *p++;
      --n;
      if (have == kHeaderSize) {
        skip = proto::parse_header(hdr).length;
        have = 0;
      }
    }
  }
  return have != 0 || skip != 0;
}

// ---------------------------------------------------------------------------------------
// output queue

/// Covers the bytes up to t->end with a mark of this block (queued at `now`).
void Session::cover(Block* t, Nanos now) {
  if (t->mark_count > t->mark_head && t->marks[t->mark_count - 1].queued == now) {
    t->marks[t->mark_count - 1].end = t->end;
  } else if (t->mark_count < kMarksPerBlock) {
    t->marks[t->mark_count++] = Mark{t->end, 0, now, now};
  } else {
    // Full: drop the consumed marks, or merge the two closest in time (see below).
    make_room_for_mark(t);
    t->marks[t->mark_count++] = Mark{t->end, 0, now, now};
  }
}

size_t Session::out_room() const {
  const Block* t = out_.tail;
  const size_t cap = block_capacity();
  return t == nullptr || t->refs || t->end == cap ? cap : cap - t->end;
}

void Session::append(const uint8_t* p, size_t n, Nanos now) {
  const size_t cap = block_capacity();
  out_bytes_ += n;
  if (env_->counters != nullptr) env_->counters->write_queue_bytes.add(n);
  while (n != 0) {
    Block* t = out_.tail;
    if (t == nullptr || t->refs || t->end == cap) t = new_block(out_);
    const size_t k = std::min(n, cap - t->end);
    if (p != nullptr) {
      std::memcpy(t->data() + t->end, p, k);
      p += k;
    } else {
      content().read(fetch_off_, {t->data() + t->end, k});
      fetch_off_ += k;
    }
    t->end += static_cast<uint32_t>(k);
    n -= k;
    cover(t, now);
  }
}

/// Frees one mark slot of a full block: consumed marks are dropped if there are any;
/// otherwise the two adjacent marks closest in time are merged, keeping the earlier time
/// (a stricter deadline, never a laxer one). With the closest pair merged, a byte is
/// blamed for at most the span of one merged mark: about a 32nd of a block's worth of
/// reading (~4 KiB at the peer's read rate), whatever the size of the write batches.
void Session::make_room_for_mark(Block* b) {
  if (b->mark_head != 0) {
    const uint16_t live = b->mark_count - b->mark_head;
    std::memmove(b->marks, b->marks + b->mark_head, live * sizeof(Mark));
    b->mark_head = 0;
    b->mark_count = live;
    return;
  }
  uint16_t best = 0;
  Nanos best_gap = kNever;
  for (uint16_t i = 0; i + 1 < b->mark_count; ++i) {
    const Nanos gap = b->marks[i + 1].queued - b->marks[i].queued;
    if (gap < best_gap) {
      best_gap = gap;
      best = i;
    }
  }
  Mark& a = b->marks[best];
  const Mark& c = b->marks[best + 1];
  if (c.requests != 0) a.rx = a.requests == 0 ? c.rx : std::min(a.rx, c.rx);
  a.requests += c.requests;
  a.end = c.end;
  std::memmove(&b->marks[best + 1], &b->marks[best + 2], (b->mark_count - best - 2) * sizeof(Mark));
  --b->mark_count;
}

void Session::append_fetch_data(size_t n, Nanos now) { append(nullptr, n, now); }

/// Queues `n` bytes at `p` (immutable for the engine's lifetime) by reference: one record
/// in a reference block (a small block when the thread has a small pool).
void Session::append_ref(const uint8_t* p, size_t n, bool file, Nanos now) {
  out_bytes_ += n;
  if (env_->counters != nullptr) env_->counters->write_queue_bytes.add(n);
  Block* t = out_.tail;
  if (t == nullptr || !t->refs || t->ref_count == ref_capacity(t) ||
      t->end > UINT32_MAX - proto::kMaxFrame) {
    t = new_block(out_, env_->small_pool != nullptr);
    t->refs = true;
  }
  t->ref_data()[t->ref_count++] = Ref{p, static_cast<uint32_t>(n), file ? 1u : 0u};
  t->end += static_cast<uint32_t>(n);
  cover(t, now);
}

void Session::add_requests(uint32_t count, Nanos rx) {
  Mark& m = out_.tail->marks[out_.tail->mark_count - 1];
  m.rx = m.requests == 0 ? rx : std::min(m.rx, rx);
  m.requests += count;
}

void Session::reply_empty(FrameType type, Nanos rx, Nanos now) {
  const uint8_t f[kHeaderSize] = {type_byte(type), 0, 0};
  append(f, kHeaderSize, now);
  add_requests(1, rx);
}

int Session::gather(iovec* iov, int max) const { return gather_output(iov, max, false).iovcnt; }

Session::OutputView Session::gather_output(iovec* iov, int max, bool files) const {
  OutputView v;
  for (const Block* b = out_.head; b != nullptr && v.iovcnt < max; b = b->next) {
    if (b->size() == 0) continue;
    if (!b->refs) {
      iov[v.iovcnt].iov_base = const_cast<uint8_t*>(b->data() + b->begin);
      iov[v.iovcnt].iov_len = b->size();
      ++v.iovcnt;
      v.bytes += b->size();
      v.immutable = false;
      continue;
    }
    const Ref* r = b->ref_data();
    for (uint32_t i = b->ref_head; i < b->ref_count && v.iovcnt < max; ++i) {
      const size_t off = i == b->ref_head ? b->ref_off : 0;
      const size_t len = r[i].len - off;
      if (files && r[i].file != 0) {
        const ContentSource& c = content();
        v.file_fd = c.fd();
        v.file_offset = c.file_offset(r[i].p) + off;
        v.file_length = len;
        return v;
      }
      iov[v.iovcnt].iov_base = const_cast<uint8_t*>(r[i].p + off);
      iov[v.iovcnt].iov_len = len;
      ++v.iovcnt;
      v.bytes += len;
    }
  }
  return v;
}

void Session::on_sent(size_t n, Nanos now) {
  if (finished()) return;
  assert(n <= out_bytes_);
  n = std::min(n, out_bytes_);
  metrics::ThreadCounters* c = env_->counters;
  if (c != nullptr) {
    c->bytes_out.add(n);
    c->write_queue_bytes.sub(n);
  }
  out_bytes_ -= n;
  while (n != 0) {
    Block* h = out_.head;
    const size_t k = std::min(n, h->size());
    h->begin += static_cast<uint32_t>(k);
    n -= k;
    if (h->refs) {
      const Ref* r = h->ref_data();
      for (size_t left = k; left != 0;) {
        const size_t rest = r[h->ref_head].len - h->ref_off;
        if (left < rest) {
          h->ref_off += static_cast<uint32_t>(left);
          break;
        }
        left -= rest;
        ++h->ref_head;
        h->ref_off = 0;
      }
    }
    while (h->mark_head < h->mark_count && h->marks[h->mark_head].end <= h->begin) {
      const Mark& m = h->marks[h->mark_head++];
      if (c != nullptr) {
        if (m.requests != 0) c->observe_service(now - m.rx, m.requests);
      }
    }
    if (h->begin == h->end) {
      if (h->next != nullptr) {
        release_front(out_);
      } else {
        // Keep the last block for what pump() may queue next (FETCH pieces, held
        // requests): no acquire/release per frame while a peer keeps reading.
        h->begin = h->end = 0;
        h->mark_head = h->mark_count = 0;
        h->ref_head = h->ref_count = h->ref_off = 0;
      }
    }
  }
  if (check_write_timeout(now)) return;
  pump(now);
  if (out_bytes_ == 0) release_chain(out_);  // idle: no block held
}

Nanos Session::write_deadline() const {
  if (out_bytes_ == 0 || env_->limits.write_timeout == 0) return kNever;
  const Block* h = out_.head;
  return add_sat(h->marks[h->mark_head].queued, env_->limits.write_timeout);
}

// ---------------------------------------------------------------------------------------
// input

void Session::on_bytes(std::span<const uint8_t> in, Nanos now) {
  if (env_->counters != nullptr) env_->counters->bytes_in.add(in.size());
  if (finished() || input_ != Input::kOpen || in.empty()) return;
  last_rx_ = now;
  while (!in.empty() && input_ == Input::kOpen) {
    if (!holds_input()) {
      // Fast path: process straight from the engine's buffer, keep only the rest.
      const size_t k = parse(in.data(), in.size(), now, now);
      in = in.subspan(k);
      if (!in.empty() && input_ == Input::kOpen) hold(in, now);
      break;
    }
    if (!can_examine() || in_.head != in_.tail) {
      hold(in, now);
      drain_held(now);
      break;
    }
    // Held: one partial frame. Top it up with just what completes it, then go on
    // from the engine's buffer.
    const size_t need = held_need();
    const size_t take = std::min(need, in.size());
    const size_t n = part_len_ + take;
    if (part_len_ != 0 && (n <= sizeof(part_) || (n == sizeof(part_) + 1 && take == need))) {
      top_up_inline(in.first(take), now);
    } else {
      hold(in.first(take), now);
      drain_held(now);
    }
    in = in.subspan(take);
  }
  refresh_frame_timer(now);
  note_pressure();
}

size_t Session::held_need() const {
  const uint8_t* p = part_;
  size_t have = part_len_;
  if (have == 0) {
    const Block* b = in_.head;
    p = b->data() + b->begin;
    have = b->size();
  }
  if (have < kHeaderSize) return kHeaderSize - have;
  const size_t total = kHeaderSize + proto::parse_header(p).length;
  return total > have ? total - have : 1;
}

/// Extends the frame held inline with `in` (at most what it needs) and parses it from the
/// stack: no block is taken for a frame of up to sizeof(part_) + 1 bytes. The caller
/// ensures the result fits inline unless it completes the frame.
void Session::top_up_inline(std::span<const uint8_t> in, Nanos now) {
  uint8_t f[sizeof(part_) + 1];
  const size_t n = part_len_ + in.size();
  assert(n <= sizeof(f));
  std::memcpy(f, part_, part_len_);
  std::memcpy(f + part_len_, in.data(), in.size());
  part_len_ = 0;
  const size_t k = parse(f, n, now, now);
  if (k == 0 && input_ == Input::kOpen) {
    // Still one partial frame (a whole one would have been taken).
    assert(n <= sizeof(part_));
    std::memcpy(part_, f, n);
    part_len_ = static_cast<uint8_t>(n);
  }
}

/// Keeps `in`, bytes that cannot be processed yet, after what is already held: inline
/// while they are the first bytes of one frame and fit; else in a block sized for the
/// first frame (small when it and everything held fit in one, moved into a big block when
/// more comes).
void Session::hold(std::span<const uint8_t> in, Nanos now) {
  if (in.empty()) return;
  if (in_.empty()) {
    const size_t n = part_len_ + in.size();
    if (n <= sizeof(part_)) {
      std::memcpy(part_ + part_len_, in.data(), in.size());
      part_len_ = static_cast<uint8_t>(n);
      if (n < kHeaderSize || n < kHeaderSize + proto::parse_header(part_).length) return;
      in = {};  // whole frames (held behind a FETCH or backpressure): into a block
    }
    size_t need = n;
    if (n >= kHeaderSize) {
      uint8_t h[kHeaderSize];
      for (size_t i = 0; i < kHeaderSize; ++i) h[i] = i < part_len_ ? part_[i] : in[i - part_len_];
      need = std::max(n, kHeaderSize + proto::parse_header(h).length);
    }
    Block* b = new_block(in_, need <= small_capacity());
    std::memcpy(b->data(), part_, part_len_);
    b->end = part_len_;
    b->rx = now;
    part_len_ = 0;
  } else if (Block* h = in_.head; h->small && in.size() > small_capacity() - h->end) {
    // The small block is the only one. Make room in it, or move into a big block.
    const size_t have = h->size();
    if (have + in.size() <= small_capacity()) {
      std::memmove(h->data(), h->data() + h->begin, have);
    } else {
      in_ = Chain{};
      Block* b = new_block(in_);
      std::memcpy(b->data(), h->data() + h->begin, have);
      b->rx = h->rx;
      free_block(h);
      h = b;
    }
    h->begin = 0;
    h->end = static_cast<uint32_t>(have);
  }
  while (!in.empty()) {
    Block* t = in_.tail;
    if (t == nullptr || t->end == capacity(t)) t = new_block(in_);
    const size_t k = std::min(in.size(), capacity(t) - t->end);
    std::memcpy(t->data() + t->end, in.data(), k);
    t->end += static_cast<uint32_t>(k);
    t->rx = now;
    in = in.subspan(k);
  }
}

void Session::drain_held(Nanos now) {
  if (part_len_ != 0) {
    // A partial frame inline (nothing in blocks). Its header may not have been examined
    // (it arrived while blocked): examine it now. Only more bytes can complete it.
    if (input_ == Input::kDead || finished() || !can_examine()) return;
    const size_t n = part_len_;
    const size_t k = parse(part_, n, now, now);
    if (input_ == Input::kDead || finished()) return;
    if (k == n) {
      part_len_ = 0;  // the start of a SINK/CHUNK: discarded, the rest as it arrives
    } else {
      assert(k == 0);
      if (input_ != Input::kOpen) drop_partial();  // no more bytes will come
      return;
    }
  }
  while (!in_.empty() && input_ != Input::kDead && !finished()) {
    Block* b = in_.head;
    if (discard_left_ == 0 && !can_examine()) return;  // blocked: keep it for later
    const size_t k = parse(b->data() + b->begin, b->size(), b->rx, now);
    if (input_ == Input::kDead || finished()) return;
    b->begin += static_cast<uint32_t>(k);
    if (b->begin == b->end) {
      release_front(in_);
      continue;
    }
    if (!can_examine()) return;
    if (b->next == nullptr) {
      // An incomplete frame; no more bytes will come once the input is closed.
      if (input_ != Input::kOpen) drop_partial();
      return;
    }
    // An incomplete frame crossing into the next block: make it contiguous. A (big) block
    // holds more than one maximal frame, so after this the frame is complete.
    assert(!b->small);
    const size_t cap = block_capacity();
    const size_t rest = b->size();
    std::memmove(b->data(), b->data() + b->begin, rest);
    b->begin = 0;
    b->end = static_cast<uint32_t>(rest);
    while (b->end < cap && b->next != nullptr) {
      Block* nb = b->next;
      const size_t m = std::min(cap - b->end, nb->size());
      std::memcpy(b->data() + b->end, nb->data() + nb->begin, m);
      b->end += static_cast<uint32_t>(m);
      nb->begin += static_cast<uint32_t>(m);
      b->rx = std::max(b->rx, nb->rx);
      if (nb->begin == nb->end) {
        b->next = nb->next;
        if (in_.tail == nb) in_.tail = b;
        free_block(nb);
      }
    }
  }
  if (in_.empty() && discard_left_ != 0 && input_ != Input::kOpen && input_ != Input::kDead) {
    drop_partial();
  }
}

void Session::drop_partial() {
  const bool partial = discard_left_ != 0 || holds_input();
  release_chain(in_);
  part_len_ = 0;
  discard_left_ = 0;
  frame_start_ = kNever;
  if (partial && input_ == Input::kEof) {
    if (env_->counters != nullptr) env_->counters->truncated_frames.add();
    // A truncated frame makes the close a protocol error (no ERROR is sent: the peer is gone).
    if (pending_ == CloseCause::kPeerClosed) pending_ = CloseCause::kProtocolError;
  }
}

/// Processes frames from p[0, n). Returns the bytes consumed: whole frames, the header and
/// available payload of a SINK/CHUNK (the rest is discarded as it arrives), or everything
/// after an ERROR. Stops at an incomplete header or ECHO/STREAM/FETCH frame, or when the
/// next request may not be examined yet.
size_t Session::parse(const uint8_t* p, size_t n, Nanos rx, Nanos now) {
  size_t i = 0;
  if (discard_left_ != 0) {
    const size_t k = std::min<size_t>(discard_left_, n);
    discard_left_ -= static_cast<uint32_t>(k);
    i = k;
    if (discard_left_ != 0) return n;
    finish_discard(rx, now);
  }
  metrics::ThreadCounters* c = env_->counters;
  while (i < n && can_examine()) {
    if (n - i < kHeaderSize) break;
    const FrameHeader h = proto::parse_header(p + i);
    if (!examine_header(h, now)) return n;
    const auto type = static_cast<FrameType>(h.type);
    const size_t total = kHeaderSize + h.length;
    big_discard_ =
        (type == FrameType::kSink || type == FrameType::kChunk) && h.length >= env_->trunc_min;
    switch (type) {
      case FrameType::kPing:
      case FrameType::kEcho: {
        if (n - i < total) return i;
        // The whole PING/ECHO frames that follow are answered by one copy (each reply is
        // byte-identical to its request) and one mark, as frame by frame would: the run
        // ends before a frame of another type, a bad header, the write queue's limit (as
        // can_examine() would stop), or a frame that would not fit in the output block.
        uint32_t count[2] = {0, 0};
        ++count[type == FrameType::kEcho];
        size_t end = i + total;
        const size_t limit = queue_limit();
        const size_t room = out_room();
        while (n - end >= kHeaderSize && (limit == 0 || out_bytes_ + (end - i) < limit)) {
          const FrameHeader g = proto::parse_header(p + end);
          const size_t next = kHeaderSize + g.length;
          if ((g.type != type_byte(FrameType::kPing) && g.type != type_byte(FrameType::kEcho)) ||
              proto::check_request_header(g, env_->limits.max_frame) != ErrorCode::kNone ||
              n - end < next || end + next - i > room)
            break;
          ++count[g.type == type_byte(FrameType::kEcho)];
          end += next;
        }
        append(p + i, end - i, now);
        add_requests(count[0] + count[1], rx);
        if (c != nullptr) {
          if (count[0] != 0) c->frames[type_byte(FrameType::kPing)].add(count[0]);
          if (count[1] != 0) c->frames[type_byte(FrameType::kEcho)].add(count[1]);
        }
        frame_start_ = kNever;
        i = end;
        break;
      }
      case FrameType::kSink:
      case FrameType::kChunk: {
        i += kHeaderSize;
        const size_t k = std::min<size_t>(h.length, n - i);
        i += k;
        discard_left_ = static_cast<uint32_t>(h.length - k);
        discard_type_ = h.type;
        if (discard_left_ != 0) return n;
        finish_discard(rx, now);
        break;
      }
      case FrameType::kStream:
      case FrameType::kFetch:
        if (n - i < total) return i;
        if (type == FrameType::kStream) {
          handle_stream(p + i + kHeaderSize, rx, now);
        } else {
          handle_fetch(p + i + kHeaderSize, rx, now);
        }
        if (input_ == Input::kDead) return n;
        i += total;
        break;
      default:
        return n;  // unreachable: examine_header accepts request types only
    }
  }
  return i;
}

/// Header-only decisions (before any payload byte is kept). Returns false after an ERROR.
bool Session::examine_header(FrameHeader h, Nanos now) {
  const uint32_t max_frame = env_->limits.max_frame;
  const ErrorCode e = proto::check_request_header(h, max_frame);
  char reason[proto::kMaxErrorReason];
  if (e != ErrorCode::kNone) {
    fmt::format_to_n_result<char*> r{};
    switch (e) {
      case ErrorCode::kUnknownType:
        r = fmt::format_to_n(reason, sizeof(reason), "unknown frame type 0x{:02x}", h.type);
        break;
      case ErrorCode::kFrameTooLarge:
        r = fmt::format_to_n(reason, sizeof(reason), "{} length {} > max-frame {}",
                             proto::frame_type_name(h.type), h.length, max_frame);
        break;
      default:
        r = fmt::format_to_n(reason, sizeof(reason), "{} length {} != {}",
                             proto::frame_type_name(h.type), h.length,
                             h.type == type_byte(FrameType::kPing) ? 0 : proto::kStreamPayloadSize);
        break;
    }
    fail(e, {reason, r.size < sizeof(reason) ? r.size : sizeof(reason)}, CloseCause::kProtocolError,
         now);
    return false;
  }
  if (h.type == type_byte(FrameType::kChunk)) {
    if (stream_chunk_ == 0) {
      fail(ErrorCode::kBadStream, "CHUNK with no open stream", CloseCause::kProtocolError, now);
      return false;
    }
    const uint64_t expected = std::min<uint64_t>(stream_chunk_, stream_left_);
    if (h.length != expected) {
      const auto r = fmt::format_to_n(reason, sizeof(reason), "CHUNK length {} != expected {}",
                                      h.length, expected);
      fail(ErrorCode::kBadStream, {reason, std::min(r.size, sizeof(reason))},
           CloseCause::kProtocolError, now);
      return false;
    }
    stream_left_ -= h.length;
    if (stream_left_ == 0) stream_chunk_ = 0;  // the last chunk: closed once acknowledged
  }
  return true;
}

void Session::finish_discard(Nanos rx, Nanos now) {
  const auto type = static_cast<FrameType>(discard_type_);
  reply_empty(type, rx, now);
  if (env_->counters != nullptr) env_->counters->frames[discard_type_].add();
  frame_start_ = kNever;
}

void Session::handle_stream(const uint8_t* payload, Nanos rx, Nanos now) {
  const proto::StreamSpec s = proto::parse_stream_spec(payload);
  char reason[proto::kMaxErrorReason];
  if (stream_chunk_ != 0) {
    fail(ErrorCode::kBadStream, "STREAM while a stream is open", CloseCause::kProtocolError, now);
    return;
  }
  if (s.chunk == 0 || s.chunk > max_payload()) {
    const auto r = fmt::format_to_n(reason, sizeof(reason), "STREAM chunk {} not in 1..{}", s.chunk,
                                    max_payload());
    fail(ErrorCode::kBadStream, {reason, std::min(r.size, sizeof(reason))},
         CloseCause::kProtocolError, now);
    return;
  }
  if (s.total != 0) {
    stream_left_ = s.total;
    stream_chunk_ = s.chunk;
  }
  reply_empty(FrameType::kStream, rx, now);
  if (env_->counters != nullptr) env_->counters->frames[type_byte(FrameType::kStream)].add();
  frame_start_ = kNever;
}

void Session::handle_fetch(const uint8_t* payload, Nanos rx, Nanos now) {
  const proto::StreamSpec s = proto::parse_stream_spec(payload);
  if (s.chunk == 0 || s.chunk > max_payload()) {
    char reason[proto::kMaxErrorReason];
    const auto r = fmt::format_to_n(reason, sizeof(reason), "FETCH chunk {} not in 1..{}", s.chunk,
                                    max_payload());
    fail(ErrorCode::kBadStream, {reason, std::min(r.size, sizeof(reason))},
         CloseCause::kProtocolError, now);
    return;
  }
  if (env_->counters != nullptr) env_->counters->frames[type_byte(FrameType::kFetch)].add();
  frame_start_ = kNever;
  fetch_left_ = s.total;
  fetch_off_ = 0;
  fetch_rx_ = rx;
  fetch_chunk_ = s.chunk;
  produce(now);
}

/// Queues DATA frames of the current FETCH while the write queue has room, then its end;
/// at most kProduceFrames frames per call (fairness: a FETCH of 1-byte chunks must not make
/// one call queue 65,536 frames; the engine's next on_sent() continues it).
void Session::produce(Nanos now) {
  const size_t queue = queue_limit();
  const size_t limit = queue == 0 ? kUnboundedFetchBatch : queue;
  // By reference when asked for, the frames are big enough to be worth two iovecs each,
  // and every body is at most two runs of the content (so a tiny file never turns one
  // frame into thousands of records).
  const ContentSource& src = content();
  const uint64_t wrap = src.wrap_size();
  const bool by_ref = env_->fetch_body != FetchBody::kCopy && fetch_chunk_ >= env_->ref_min_chunk &&
                      (wrap == 0 || wrap >= fetch_chunk_);
  const bool file = by_ref && env_->fetch_body == FetchBody::kFile && src.fd() >= 0;
  for (size_t frames = 0; fetch_active() && out_bytes_ < limit && frames < kProduceFrames;
       ++frames) {
    if (fetch_left_ == 0) {
      reply_empty(FrameType::kFetch, fetch_rx_, now);  // end frame: answers the request
      fetch_chunk_ = 0;
      return;
    }
    const auto k = static_cast<uint16_t>(std::min<uint64_t>(fetch_chunk_, fetch_left_));
    if (by_ref) {
      append_ref(&kDataHeaders[kHeaderSize * k], kHeaderSize, false, now);
      for (size_t left = k; left != 0;) {
        const std::span<const uint8_t> v = src.view(fetch_off_, left);
        append_ref(v.data(), v.size(), file, now);
        fetch_off_ += v.size();
        left -= v.size();
      }
    } else {
      append(&kDataHeaders[kHeaderSize * k], kHeaderSize, now);
      append_fetch_data(k, now);
    }
    fetch_left_ -= k;
  }
}

size_t Session::discard_pending() const {
  if (discard_left_ == 0 || holds_input() || !wants_read()) return 0;
  return discard_left_;
}

void Session::on_discarded(size_t n, Nanos now) {
  if (env_->counters != nullptr) env_->counters->bytes_in.add(n);
  if (finished() || input_ != Input::kOpen || n == 0) return;
  assert(n <= discard_left_ && !holds_input());
  last_rx_ = now;
  discard_left_ -= static_cast<uint32_t>(std::min<size_t>(n, discard_left_));
  if (discard_left_ == 0) finish_discard(now, now);
  refresh_frame_timer(now);
}

size_t Session::read_lowat() const {
  if (!wants_read() || discard_left_ != 0 || !holds_input()) return 1;
  if (part_len_ == 0 && in_.head != in_.tail) return 1;
  return held_need();  // 1 unless the held bytes are exactly one partial frame
}

size_t Session::read_hint() const {
  if (!env_->ingest_trunc || !big_discard_ || discard_left_ != 0 || holds_input()) return 0;
  return kHeaderSize;
}

void Session::on_peer_eof(Nanos now) {
  if (finished() || input_ != Input::kOpen) return;
  input_ = Input::kEof;
  set_pending(CloseCause::kPeerClosed);
  if (in_.empty() && discard_left_ != 0) drop_partial();
  pump(now);
}

// ---------------------------------------------------------------------------------------
// errors, time, drain

void Session::fail(ErrorCode code, std::string_view reason, CloseCause cause, Nanos now) {
  uint8_t frame[kHeaderSize + 1 + proto::kMaxErrorReason];
  const size_t n = proto::encode_error(frame, code, reason);
  append(frame, n, now);
  if (env_->counters != nullptr) env_->counters->protocol_errors[static_cast<size_t>(code)].add();
  input_ = Input::kDead;
  fetch_chunk_ = 0;
  release_chain(in_);
  part_len_ = 0;
  discard_left_ = 0;
  frame_start_ = kNever;
  set_pending(cause);
}

void Session::set_pending(CloseCause c) {
  if (pending_ == CloseCause::kNone) pending_ = c;
}

void Session::maybe_finish() {
  if (finished() || input_ == Input::kOpen) return;
  if (out_bytes_ != 0 || fetch_active() || holds_input() || discard_left_ != 0) return;
  cause_ = pending_ == CloseCause::kNone ? CloseCause::kPeerClosed : pending_;
  drop_everything(/*keep_output_blocks=*/false);  // nothing unsent: no write can be in flight
}

void Session::refresh_frame_timer(Nanos now) {
  const bool partial = wants_read() && (discard_left_ != 0 || holds_input());
  if (!partial) {
    frame_start_ = kNever;
  } else if (frame_start_ == kNever) {
    frame_start_ = now;
  }
}

/// Everything that may follow freed room or passing time: FETCH pieces, held requests,
/// the end of the connection.
void Session::pump(Nanos now) {
  if (finished()) return;
  if (fetch_active()) produce(now);
  drain_held(now);
  maybe_finish();
  refresh_frame_timer(now);
  note_pressure();
}

Nanos Session::next_deadline() const {
  if (finished()) return kNever;
  Nanos d = write_deadline();
  if (input_ == Input::kOpen) {
    const SessionLimits& l = env_->limits;
    if (l.idle_timeout != 0 && out_bytes_ == 0 && !fetch_active())
      d = std::min(d, add_sat(last_rx_, l.idle_timeout));
    if (l.frame_timeout != 0 && frame_start_ != kNever)
      d = std::min(d, add_sat(frame_start_, l.frame_timeout));
  }
  return d;
}

bool Session::check_write_timeout(Nanos now) {
  if (write_deadline() > now) return false;
  if (metrics::ThreadCounters* c = env_->counters; c != nullptr) {
    c->write_queue_drops.add();
    c->timeouts[static_cast<size_t>(metrics::TimeoutKind::kWrite)].add();
  }
  cause_ = CloseCause::kWriteTimeout;
  // The unsent output is dropped, but its blocks stay until the Session is destroyed: an
  // engine may have a write of them in flight that the kernel still reads (io_uring).
  drop_everything(/*keep_output_blocks=*/true);
  return true;
}

bool Session::input_timeout_due(Nanos now) const {
  if (finished() || input_ != Input::kOpen) return false;
  const SessionLimits& l = env_->limits;
  if (l.frame_timeout != 0 && frame_start_ != kNever &&
      add_sat(frame_start_, l.frame_timeout) <= now)
    return true;
  return l.idle_timeout != 0 && out_bytes_ == 0 && !fetch_active() &&
         add_sat(last_rx_, l.idle_timeout) <= now;
}

void Session::on_tick(Nanos now) {
  if (finished() || check_write_timeout(now)) return;
  metrics::ThreadCounters* c = env_->counters;
  if (input_ == Input::kOpen) {
    const SessionLimits& l = env_->limits;
    char reason[proto::kMaxErrorReason];
    if (l.frame_timeout != 0 && frame_start_ != kNever &&
        add_sat(frame_start_, l.frame_timeout) <= now) {
      if (c != nullptr) c->timeouts[static_cast<size_t>(metrics::TimeoutKind::kFrame)].add();
      const std::string d = format_duration(l.frame_timeout);
      const auto r = fmt::format_to_n(reason, sizeof(reason), "frame not complete within {}", d);
      fail(ErrorCode::kTimeout, {reason, std::min(r.size, sizeof(reason))}, CloseCause::kTimeout,
           now);
    } else if (l.idle_timeout != 0 && out_bytes_ == 0 && !fetch_active() &&
               add_sat(last_rx_, l.idle_timeout) <= now) {
      if (c != nullptr) c->timeouts[static_cast<size_t>(metrics::TimeoutKind::kIdle)].add();
      const std::string d = format_duration(l.idle_timeout);
      const auto r = fmt::format_to_n(reason, sizeof(reason), "idle for {}", d);
      fail(ErrorCode::kTimeout, {reason, std::min(r.size, sizeof(reason))}, CloseCause::kTimeout,
           now);
    }
  }
  pump(now);
}

void Session::begin_drain(Nanos now) {
  if (finished() || goaway_sent_ || input_ == Input::kDead) return;
  goaway_sent_ = true;
  // The queue holds whole frames only (DATA frames of a FETCH included), so its end is a
  // frame boundary of the output.
  append(kGoawayFrame, kHeaderSize, now);
}

void Session::force_close(Nanos now) {
  if (finished()) return;
  if (input_ == Input::kOpen) {
    forced_in_flight_ = request_in_flight();
    input_ = Input::kForced;
  }
  if (pending_ == CloseCause::kNone) {
    pending_ = CloseCause::kForced;
    if (env_->counters != nullptr) env_->counters->drain_forced.add();
  }
  if (in_.empty() && discard_left_ != 0) drop_partial();
  pump(now);
}

void Session::refuse_overloaded(Nanos now) {
  if (finished() || input_ == Input::kDead) return;
  if (shrunk_ && env_->counters != nullptr) {
    // Never served: not a connection that got a shrunk queue.
    env_->counters->overload_actions[static_cast<size_t>(metrics::OverloadAction::kShrinkQueue)]
        .sub();
    shrunk_ = false;
  }
  if (env_->counters != nullptr) env_->counters->overloaded_total.add();
  fail(ErrorCode::kOverloaded, "over max-conns", CloseCause::kOverloaded, now);
}

// ---------------------------------------------------------------------------------------
// memory budget

size_t Session::memory_held() const {
  size_t n = 0;
  for (const Block* b = out_.head; b != nullptr; b = b->next) n += capacity(b) + sizeof(Block);
  for (const Block* b = in_.head; b != nullptr; b = b->next) n += capacity(b) + sizeof(Block);
  return n;
}

void Session::shed(Nanos now) {
  if (finished()) return;
  metrics::ThreadCounters* c = env_->counters;
  if (out_bytes_ == 0 && input_ != Input::kDead) {
    // Nothing queued: the ERROR starts at a frame boundary of the output.
    if (c != nullptr)
      c->overload_actions[static_cast<size_t>(metrics::OverloadAction::kCloseError)].add();
    fail(ErrorCode::kOverloaded, "memory budget exceeded", CloseCause::kOverloaded, now);
    return;
  }
  if (c != nullptr)
    c->overload_actions[static_cast<size_t>(metrics::OverloadAction::kCloseReset)].add();
  cause_ = CloseCause::kShed;
  // As for a write timeout: the blocks stay until the Session is destroyed (a write of
  // them may be in flight in an io_uring engine).
  drop_everything(/*keep_output_blocks=*/true);
}

}  // namespace c10m::core
