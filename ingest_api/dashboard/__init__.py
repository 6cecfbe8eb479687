"""The admin web dashboard served at /admin/: server-rendered pages over the admin API's own code."""
