"""``backend: verl``: the settings verl is handed (:mod:`.settings`) and the launch (:mod:`.launch`)."""
