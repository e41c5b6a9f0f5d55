"""Plugin machinery: hook specifications (``hookspecs``) and the manager that loads plugins."""
