"""The on-site web console: the technician's live view of the site, served by the edge device."""
