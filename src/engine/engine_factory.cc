// placeholder: implemented by the engine owner
