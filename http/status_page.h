// The admin listener's read-only status page, served at / (http/admin_api).
//
// One self-contained HTML document: inline CSS and script, nothing fetched
// from the network but the node's own admin JSON API, which the script polls
// every few seconds (members, pins with each node's progress, transfers,
// traffic and its history). With an admin token the page asks for it once
// (or takes it from the URL fragment #token=...) and keeps it for the tab.
// All text from the API is set as text, never parsed as HTML. Pure data.
#pragma once

#include <string_view>

namespace ep::http {

std::string_view status_page_html();

}  // namespace ep::http
