// The one CAF type-id file: every atom the actors exchange.
//
// Control messages between nodes carry only sealed bytes (std::string, see
// site/security.h), so no custom types need registering; bulk data never
// travels in CAF messages. Local messages may carry callbacks and shared
// outcomes (the revalidation actor's): allowed below, never serialized.
#pragma once

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>

#include "dataplane/tag_revalidations.h"

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(ep::TagRevalidations::Run)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(ep::TagRevalidations::Waiter)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(ep::TagRevalidations::Outcome)

namespace ep::actors {

using envelope_atom = caf::atom_constant<caf::atom("envelope")>;  // (sealed bytes) between nodes
using tick_atom = caf::atom_constant<caf::atom("tick")>;           // periodic timer
using tag_put_atom = caf::atom_constant<caf::atom("tagput")>;      // local tag written
using tag_del_atom = caf::atom_constant<caf::atom("tagdel")>;      // local tag deleted
using pin_add_atom = caf::atom_constant<caf::atom("pinadd")>;      // admin: pin a reference
using pin_rm_atom = caf::atom_constant<caf::atom("pinrm")>;        // admin: unpin
using pin_used_atom = caf::atom_constant<caf::atom("pinused")>;    // a client pulled a reference here
using members_atom = caf::atom_constant<caf::atom("members")>;     // admin: member list (JSON)
using tags_atom = caf::atom_constant<caf::atom("tags")>;           // admin: tag map (JSON)
using pins_atom = caf::atom_constant<caf::atom("pins")>;           // admin: pin set (JSON)
using leave_atom = caf::atom_constant<caf::atom("leave")>;         // admin: leave the site
using metrics_atom = caf::atom_constant<caf::atom("metrics")>;     // Prometheus lines
using ready_atom = caf::atom_constant<caf::atom("ready")>;         // joined? (bool)
using holds_atom = caf::atom_constant<caf::atom("holds")>;         // which pinned images are complete here
using store_atom = caf::atom_constant<caf::atom("store")>;         // writes for the store actor
using stop_atom = caf::atom_constant<caf::atom("stop")>;           // the store actor ends (after what is queued)
using flush_atom = caf::atom_constant<caf::atom("flush")>;         // the store actor retries writes that did not land
using round_atom = caf::atom_constant<caf::atom("round")>;         // replicator: a round's blobs to fetch
using started_atom = caf::atom_constant<caf::atom("started")>;     // replicator: how starting a fetch went
using fetched_atom = caf::atom_constant<caf::atom("fetched")>;     // replicator: a started fetch ended (ok?)
using retry_atom = caf::atom_constant<caf::atom("retry")>;         // replicator: ask again after yielding to clients
using rested_atom = caf::atom_constant<caf::atom("rested")>;       // replicator: housekeeping after a round is done
using revalidate_atom = caf::atom_constant<caf::atom("reval")>;    // a client asks for a mirrored tag
using revalidated_atom = caf::atom_constant<caf::atom("revalok")>; // a tag's revalidation ended (outcome)
using patience_atom = caf::atom_constant<caf::atom("patience")>;   // a waiter's patience ran out
using stale_atom = caf::atom_constant<caf::atom("stale")>;         // a tag's freshness (tag-ttl) ended
using blob_atom = caf::atom_constant<caf::atom("blob")>;           // a blob was stored or removed here (key, present)
using access_atom = caf::atom_constant<caf::atom("access")>;       // the registry users and rules changed (fingerprint)

}  // namespace ep::actors
