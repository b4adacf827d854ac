// placeholder: implemented by the core owner
