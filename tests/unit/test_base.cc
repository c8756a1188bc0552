// Names, tags and digests: the grammar every request is checked against.
#include <catch2/catch.hpp>

#include "base/digest.h"
#include "base/names.h"

using namespace ep;

TEST_CASE("repository names follow the distribution grammar") {
  for (auto good : {"a", "library/alpine", "a/b/c", "my-repo", "a__b", "a.b", "x1/y-2/z_3", "a---b"})
    CHECK(validate_repository(good).ok());
  for (auto bad : {"", "A", "a/", "/a", "a//b", "../etc", "a/../b", "a..b", "a_-b", "-a", "a-", "a%2fb", "a b",
                   "a\nb", "a___b"})
    CHECK(validate_repository(bad).code == Errc::name_invalid);
  CHECK(validate_repository(std::string(256, 'a')).code == Errc::name_invalid);
  CHECK(validate_repository(std::string(255, 'a')).ok());
}

TEST_CASE("tags follow the distribution grammar") {
  for (auto good : {"latest", "v1.2.3", "_x", "A-b_c.d", "0"}) CHECK(validate_tag(good).ok());
  for (auto bad : {"", ".x", "-x", "a/b", "a:b", "a b"}) CHECK(validate_tag(bad).code == Errc::tag_invalid);
  CHECK(validate_tag(std::string(128, 'a')).ok());
  CHECK(validate_tag(std::string(129, 'a')).code == Errc::tag_invalid);
}

TEST_CASE("digests: sha256 only, canonical lowercase hex") {
  auto empty = Digest::of("");
  CHECK(empty.str() == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(Digest::parse(empty.str()).ok());
  CHECK(Digest::parse("sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855").status().code ==
        Errc::digest_invalid);
  CHECK(Digest::parse("sha256:abc").status().code == Errc::digest_invalid);
  CHECK(Digest::parse("sha512:" + std::string(128, 'a')).status().code == Errc::digest_invalid);
  CHECK(Digest::parse("latest").status().code == Errc::digest_invalid);
  CHECK(looks_like_digest("sha256:abc"));
  CHECK(looks_like_digest("multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8"));
  CHECK_FALSE(looks_like_digest("latest"));
  CHECK_FALSE(looks_like_digest("v1.0"));
  CHECK(looks_like_digest("sha.256-x_y:a=b_c-D9"));
  for (auto bad : {"sha256+:abc", "+sha256:abc", "sha..256:abc", "SHA256:abc", "sha256:ab/c", "sha256:", ":abc",
                   "sha 256:abc", "sha256:a b"})
    CHECK_FALSE(looks_like_digest(bad));
}

TEST_CASE("streaming sha256 equals one-shot") {
  std::string data(100000, 'x');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 31);
  Sha256 h;
  for (size_t i = 0; i < data.size(); i += 777) h.update(data.data() + i, std::min<size_t>(777, data.size() - i));
  CHECK(h.finish() == Digest::of(data));
}
