// HttpClient (see http_client.h): each request is an Exchange, a chain of
// handlers on its own strand. Boost.Asio is included after <utility>.
#include <utility>

#include "upstream/http_client.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <limits>
#include <mutex>

#include "base/blocking_pool.h"
#include "base/io_pool.h"

namespace ep {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;

namespace {
// Set while run_here() runs its private context on this thread: requests
// started meanwhile run there.
thread_local net::io_context* t_private_context = nullptr;

// A streamed body goes to the sink in pieces of at least this much (or the
// rest): fewer disk writes than one per socket read.
constexpr size_t kSinkPiece = 256 << 10;
constexpr size_t kReadBuffer = 1 << 20;
// A host name's addresses are used this long before it is looked up again:
// a rush of cold blobs from one upstream costs one lookup, not one each.
constexpr std::chrono::seconds kLookupTtl{30};
}  // namespace

struct HttpClient::Shared {
  Options options;
  ssl::context tls{ssl::context::tls_client};
  Status tls_status;  // why HTTPS cannot be used (a CA file that does not load)
  IoPool* io = nullptr;
  BlockingPool* lookups = nullptr;

  std::mutex mu;  // guards what follows
  bool cancelled = false;
  uint64_t next_id = 0;
  std::map<uint64_t, std::function<void()>> cancels;  // requests in flight
  struct Lookup {
    tcp::resolver::results_type endpoints;
    std::chrono::steady_clock::time_point expires;
  };
  std::map<std::string, Lookup> lookups_done;  // by "host:port"; a handful of upstreams

  explicit Shared(Options o) : options(std::move(o)) {
    beast::error_code ec;
    tls.set_default_verify_paths(ec);
    if (!options.ca_file.empty()) {
      tls.load_verify_file(options.ca_file, ec);
      if (ec) tls_status = Status{Errc::io_error, "cannot load CA file " + options.ca_file + ": " + ec.message()};
    }
    tls.set_verify_mode(ssl::verify_peer);
  }
  // Lists a request for cancel_all(); nullopt once the client was cancelled.
  std::optional<uint64_t> enlist(std::function<void()> cancel) {
    std::lock_guard lock(mu);
    if (cancelled) return std::nullopt;
    cancels[++next_id] = std::move(cancel);
    return next_id;
  }
  void delist(uint64_t id) {
    std::lock_guard lock(mu);
    cancels.erase(id);
  }
  std::optional<tcp::resolver::results_type> looked_up(const std::string& key) {
    std::lock_guard lock(mu);
    auto it = lookups_done.find(key);
    if (it == lookups_done.end() || it->second.expires < std::chrono::steady_clock::now()) return std::nullopt;
    return it->second.endpoints;
  }
  void remember(const std::string& key, const tcp::resolver::results_type& endpoints) {
    std::lock_guard lock(mu);
    lookups_done[key] = Lookup{endpoints, std::chrono::steady_clock::now() + kLookupTtl};
  }
};

namespace {

// One request: resolve, connect, (TLS), write, read the head, then the body
// into the sink or a buffer. Every handler runs on strand_; `done` is called
// once, from end().
class Exchange : public std::enable_shared_from_this<Exchange> {
 public:
  Exchange(net::any_io_executor strand, std::shared_ptr<HttpClient::Shared> shared, HttpRequest request,
           std::shared_ptr<AsyncBodySink> sink, ResponseHandler done)
      : strand_(strand), shared_(std::move(shared)), request_(std::move(request)), sink_(std::move(sink)),
        done_(std::move(done)), tcp_(strand) {
    io_timeout_ = request_.io_timeout.count() ? request_.io_timeout : shared_->options.io_timeout;
  }

  ~Exchange() {
    if (registration_) shared_->delist(*registration_);  // its handlers were dropped (the pool stopped)
  }

  void start(bool lookup_here) {
    // The cancel holds no executor: the client (and its list) may outlive
    // the I/O pool, whose strands must not be touched once it is gone.
    auto id = shared_->enlist([weak = weak_from_this()] {
      if (auto self = weak.lock()) net::post(self->strand_, [self] { self->cancel(); });
    });
    if (!id) return post_end(Status::Stopping());
    registration_ = *id;
    if (request_.url.scheme == "https" && !shared_->tls_status) return post_end(shared_->tls_status);
    beast::error_code ec;
    auto address = net::ip::make_address(request_.url.host, ec);
    if (!ec) {  // a numeric host needs no lookup
      auto endpoints = tcp::resolver::results_type::create(tcp::endpoint(address, request_.url.port),
                                                           request_.url.host, std::to_string(request_.url.port));
      return net::post(strand_, [self = shared_from_this(), endpoints] { self->connect(endpoints); });
    }
    if (auto known = shared_->looked_up(lookup_key()))
      return net::post(strand_, [self = shared_from_this(), endpoints = *known] { self->connect(endpoints); });
    auto lookup = [self = shared_from_this()] { self->look_up(); };
    if (lookup_here) return lookup();
    if (!shared_->lookups || !shared_->lookups->post(lookup))
      post_end(Status::Stopping());
  }

 private:
  // A name lookup blocks (getaddrinfo): called on a blocking pool, or on
  // the thread of run_here().
  void look_up() {
    tcp::resolver resolver(strand_);
    beast::error_code ec;
    auto endpoints = resolver.resolve(request_.url.host, std::to_string(request_.url.port), ec);
    if (!ec) shared_->remember(lookup_key(), endpoints);
    net::post(strand_, [self = shared_from_this(), ec, endpoints] {
      if (ec) return self->end(Status{Errc::io_error, "cannot resolve " + self->request_.url.host + ": " + ec.message()});
      self->connect(endpoints);
    });
  }

  std::string lookup_key() const { return request_.url.host + ":" + std::to_string(request_.url.port); }

  void connect(const tcp::resolver::results_type& endpoints) {
    if (cancelled_) return end(Status::Stopping());
    tcp_.expires_after(shared_->options.connect_timeout);
    tcp_.async_connect(endpoints, [self = shared_from_this()](beast::error_code ec, const tcp::endpoint&) {
      if (ec) return self->end(self->failure("cannot connect to", ec));
      beast::error_code ignored;
      self->tcp_.socket().set_option(tcp::no_delay(true), ignored);
      if (self->request_.url.scheme == "https") return self->handshake();
      self->write_request();
    });
  }

  void handshake() {
    tls_ = std::make_unique<ssl::stream<beast::tcp_stream&>>(tcp_, shared_->tls);
    SSL_set_tlsext_host_name(tls_->native_handle(), request_.url.host.c_str());
    tls_->set_verify_callback(ssl::host_name_verification(request_.url.host));
    tcp_.expires_after(shared_->options.connect_timeout);
    tls_->async_handshake(ssl::stream_base::client, [self = shared_from_this()](beast::error_code ec) {
      if (ec) return self->end(self->failure("TLS handshake failed with", ec));
      self->write_request();
    });
  }

  template <class F>
  void on_stream(F&& f) {
    if (tls_)
      f(*tls_);
    else
      f(tcp_);
  }

  void write_request() {
    const Url& url = request_.url;
    bool default_port = (url.scheme == "https" && url.port == 443) || (url.scheme == "http" && url.port == 80);
    head_out_ = {bhttp::string_to_verb(request_.method), url.target, 11};
    head_out_.set(bhttp::field::host, default_port ? url.host : url.host + ":" + std::to_string(url.port));
    head_out_.set(bhttp::field::user_agent, "edgepier/0.1");
    head_out_.set(bhttp::field::connection, "close");
    for (const auto& [k, v] : request_.headers) head_out_.insert(k, v);
    tcp_.expires_after(io_timeout_);
    on_stream([&](auto& stream) {
      bhttp::async_write(stream, head_out_, [self = shared_from_this()](beast::error_code ec, size_t) {
        if (ec) return self->end(self->failure("cannot send request to", ec));
        self->read_head();
      });
    });
  }

  void read_head() {
    // Beast reads at most what the buffer has room for: left at its initial
    // size, a 4 MiB body came in 8,000 reads of 512 bytes.
    buffer_.reserve(64 << 10);
    parser_.header_limit(64 * 1024);
    parser_.body_limit(std::numeric_limits<std::uint64_t>::max());
    parser_.skip(request_.method == "HEAD");
    tcp_.expires_after(io_timeout_);
    on_stream([&](auto& stream) {
      bhttp::async_read_header(stream, buffer_, parser_, [self = shared_from_this()](beast::error_code ec, size_t) {
        if (ec) return self->end(self->failure("no response from", ec));
        self->head_arrived();
      });
    });
  }

  void head_arrived() {
    const auto& head = parser_.get();
    response_.status = head.result_int();
    for (const auto& field : head) {
      std::string name(field.name_string());
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      auto& slot = response_.headers[name];
      slot = slot.empty() ? std::string(field.value()) : slot + ", " + std::string(field.value());
    }
    if (auto len = parser_.content_length()) response_.content_length = *len;
    streaming_ = sink_ && sink_->accept(response_);
    // A body the sink refused (a redirect's, or a whole blob where a range
    // was asked for) is not downloaded just to be dropped: the connection closes.
    if (sink_ && !streaming_) return end(std::move(response_));
    chunk_.resize(kReadBuffer);
    read_body();
  }

  void read_body() {
    if (cancelled_) return end(Status::Stopping());
    if (parser_.is_done() || filled_ >= kSinkPiece) return deliver();
    auto& body = parser_.get().body();
    body.data = chunk_.data() + filled_;
    body.size = chunk_.size() - filled_;
    // read_some: the deadline bounds a stall (no bytes), not how long a slow
    // but moving stream takes to fill the buffer.
    tcp_.expires_after(io_timeout_);
    on_stream([&](auto& stream) {
      bhttp::async_read_some(stream, buffer_, parser_, [self = shared_from_this()](beast::error_code ec, size_t) {
        if (ec == bhttp::error::need_buffer) ec = {};
        if (ec) return self->end(self->failure("transfer interrupted from", ec));
        self->filled_ = self->chunk_.size() - self->parser_.get().body().size;
        self->read_body();
      });
    });
  }

  // Hands what was read to the sink (which calls back once it is stored)
  // or to the buffered body; ends the request after the last piece.
  void deliver() {
    const size_t piece = filled_;
    filled_ = 0;
    auto after = [self = shared_from_this()] {
      if (self->parser_.is_done()) return self->end(std::move(self->response_));
      self->read_body();
    };
    if (!streaming_) {
      if (response_.body.size() + piece > request_.max_buffered_body)
        return end(Status{Errc::io_error, "response from " + request_.url.origin() + " is too large"});
      response_.body.append(chunk_.data(), piece);
      return after();
    }
    if (piece == 0) return after();
    sink_->on_body(chunk_.data(), piece, [self = shared_from_this(), after](Status s) {
      net::post(self->strand_, [self, after, s] {
        if (!s) return self->end(s);
        after();
      });
    });
  }

  void cancel() {
    cancelled_ = true;
    beast::error_code ignored;
    tcp_.socket().close(ignored);
  }

  Status failure(const std::string& what, beast::error_code ec) const {
    if (cancelled_) return Status::Stopping();
    return Status{Errc::io_error, what + " " + request_.url.origin() + ": " + ec.message()};
  }

  void post_end(Status s) {
    net::post(strand_, [self = shared_from_this(), s] { self->end(s); });
  }

  void end(Result<HttpResponse> result) {
    if (!done_) return;
    if (registration_) shared_->delist(*registration_);
    registration_.reset();
    beast::error_code ignored;
    tcp_.socket().close(ignored);
    auto done = std::move(done_);
    done_ = nullptr;
    done(std::move(result));
  }

  net::any_io_executor strand_;
  std::shared_ptr<HttpClient::Shared> shared_;
  HttpRequest request_;
  std::shared_ptr<AsyncBodySink> sink_;
  ResponseHandler done_;
  beast::tcp_stream tcp_;
  std::unique_ptr<ssl::stream<beast::tcp_stream&>> tls_;
  std::chrono::milliseconds io_timeout_;
  std::optional<uint64_t> registration_;
  bool cancelled_ = false;
  bhttp::request<bhttp::empty_body> head_out_;
  beast::flat_buffer buffer_;
  bhttp::response_parser<bhttp::buffer_body> parser_;
  HttpResponse response_;
  bool streaming_ = false;
  std::vector<char> chunk_;  // the body read buffer, kReadBuffer bytes
  size_t filled_ = 0;        // bytes of chunk_ not yet delivered
};

}  // namespace

HttpClient::HttpClient(Options options)
    : options_(options), shared_(std::make_shared<Shared>(std::move(options))) {}

HttpClient::~HttpClient() = default;

void HttpClient::use_pools(IoPool& io, BlockingPool& lookups) {
  shared_->io = &io;
  shared_->lookups = &lookups;
}

void HttpClient::cancel_all() const {
  std::map<uint64_t, std::function<void()>> cancels;
  {
    std::lock_guard lock(shared_->mu);
    shared_->cancelled = true;
    cancels.swap(shared_->cancels);
  }
  for (auto& [id, cancel] : cancels) cancel();
}

void HttpClient::async_send(HttpRequest request, std::shared_ptr<AsyncBodySink> sink, ResponseHandler done) const {
  net::io_context* context = t_private_context ? t_private_context : shared_->io ? &shared_->io->context() : nullptr;
  if (!context) return done(Status{Errc::upstream_unavailable, "no I/O pool for upstream requests"});
  auto exchange = std::make_shared<Exchange>(net::make_strand(context->get_executor()), shared_, std::move(request),
                                             std::move(sink), std::move(done));
  exchange->start(/*lookup_here=*/t_private_context != nullptr);
}

void HttpClient::run_here(const std::function<void()>& start) const {
  net::io_context context;
  auto* outer = t_private_context;
  t_private_context = &context;
  start();
  context.run();
  t_private_context = outer;
}

std::shared_ptr<AsyncBodySink> blocking_sink(BodySink* sink) {
  if (!sink) return nullptr;
  return std::make_shared<AsyncBodySink>(AsyncBodySink{
      sink->accept, [sink](const char* data, size_t n, std::function<void(Status)> next) { next(sink->on_body(data, n)); }});
}

}  // namespace ep
