# Injected into every interface package built by scripts/build_msgs.sh (CMAKE_PROJECT_INCLUDE),
# so packages we do not own (e.g. the vendored composition_interfaces) build the same way as ours.
#
# ROS 2 from PyPI wheels: their exported *__rosidl_generator_py targets name the include dirs of
# the interpreter the wheels were built with (/opt/python/...). Re-point every such imported
# target at this interpreter's Python and NumPy headers once all targets exist (deferred to the
# end of the top-level CMakeLists.txt). A normal ROS 2 install has no such paths: no change there.
find_package(Python3 REQUIRED COMPONENTS Interpreter Development.Module NumPy)
function(_wheel_python_includes_fix)
  get_directory_property(_targets IMPORTED_TARGETS)
  foreach(_tgt IN LISTS _targets)
    if(NOT _tgt MATCHES "__rosidl_generator_py$")
      continue()
    endif()
    get_target_property(_incs ${_tgt} INTERFACE_INCLUDE_DIRECTORIES)
    if(NOT _incs)
      continue()
    endif()
    set(_fixed "")
    set(_changed FALSE)
    foreach(_inc IN LISTS _incs)
      if(_inc MATCHES "^/opt/python/" AND NOT EXISTS "${_inc}")
        set(_changed TRUE)
      else()
        list(APPEND _fixed "${_inc}")
      endif()
    endforeach()
    if(_changed)
      list(APPEND _fixed ${Python3_INCLUDE_DIRS} ${Python3_NumPy_INCLUDE_DIRS})
      set_target_properties(${_tgt} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_fixed}")
    endif()
  endforeach()
endfunction()
cmake_language(DEFER CALL _wheel_python_includes_fix)
